"""`python evaluate.py experiment=...`: retrieval with off-the-shelf encoders (or a trained checkpoint's).

Also `prodmatch-evaluate` once installed; `-m` sweeps several experiments.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from prodmatch.tasks.resolvers import register_resolvers
from prodmatch.tasks.wrapper import task_wrapper
from prodmatch.utils.config import config_path

register_resolvers()


@task_wrapper
def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run, score and record the configured retrieval; returns the metrics."""
    from hydra.utils import instantiate

    from prodmatch.retrieval.evaluation import record, score
    from prodmatch.tasks import instantiators as inst
    from prodmatch.tasks.summary import format_summary
    from prodmatch.tracking import build_loggers

    loggers = build_loggers(cfg.logger, cfg.paths.output_dir)
    for lg in loggers:
        lg.log_hyperparams(inst.resolved(cfg))
    pipeline = instantiate(cfg.retrieval)
    encoders = inst.pipeline_encoders(cfg, pipeline)
    queries, database = inst.load_catalogs(cfg, pipeline.needs_images)
    result = pipeline.run(queries, database, encoders, inst.embedding_cache(cfg), strict=cfg.data.strict)
    result.config = inst.resolved(cfg)
    metrics = score(result)
    if inst.records_results(cfg):
        record(result, metrics, cfg.paths.output_dir, loggers, cfg.log_examples)
        title = f"{cfg.experiment_name} on {cfg.data.name}: {cfg.task_name} run in {cfg.paths.output_dir}"
        print(format_summary(title, metrics, result.k))
    return metrics


@hydra.main(version_base="1.3", config_path=config_path(), config_name="evaluate")
def main(cfg: DictConfig) -> float | None:
    """Hydra main: returns the optimised metric (NaN for a failed sweep job)."""
    from prodmatch.tasks.instantiators import objective

    return objective(evaluate(cfg), cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
