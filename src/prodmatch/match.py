"""`python match.py experiment=... top_n=N`: every query card's top-N database matches, to one CSV.

Also `prodmatch-match` once installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from prodmatch.tasks.resolvers import register_resolvers
from prodmatch.tasks.wrapper import task_wrapper
from prodmatch.utils.config import config_path

register_resolvers()


@task_wrapper
def match(cfg: DictConfig) -> dict[str, Any]:
    """Run and score the retrieval at depth top_n, record it, and write the match export to `cfg.out`."""
    from hydra.utils import instantiate

    from prodmatch.errors import ConfigError
    from prodmatch.retrieval.artifacts import write_export
    from prodmatch.retrieval.evaluation import record, score
    from prodmatch.tasks import instantiators as inst
    from prodmatch.tracking import build_loggers

    if isinstance(cfg.top_n, bool) or not isinstance(cfg.top_n, int) or cfg.top_n < 1:
        raise ConfigError(f"top_n={cfg.top_n!r} must be a positive integer (matches per query card)")
    loggers = build_loggers(cfg.logger, cfg.paths.output_dir)
    pipeline = instantiate(cfg.retrieval, k=cfg.top_n)
    queries, database = inst.load_catalogs(cfg, pipeline.needs_images)
    encoders = inst.pipeline_encoders(cfg, pipeline)
    result = pipeline.run(queries, database, encoders, inst.embedding_cache(cfg), strict=cfg.data.strict)
    result.config = inst.resolved(cfg)
    metrics = score(result)
    if inst.records_results(cfg):
        record(result, metrics, cfg.paths.output_dir, loggers, cfg.log_examples)
        export = write_export(result, Path(cfg.out), cfg.top_n)
        print(
            f"{len(export)} matches of {len(result.queries)} query cards ({result.description}) -> {cfg.out}"
        )
    return metrics


@hydra.main(version_base="1.3", config_path=config_path(), config_name="match")
def main(cfg: DictConfig) -> None:
    """Hydra main."""
    match(cfg)


if __name__ == "__main__":
    main()
