"""The match task: every query card's top-N database matches, recorded like an evaluation and exported."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from prodmatch.errors import ConfigError
from prodmatch.retrieval.artifacts import write_export
from prodmatch.retrieval.evaluation import record, score
from prodmatch.tasks import instantiators as inst
from prodmatch.tasks.evaluate import retrieve
from prodmatch.tasks.run import Run
from prodmatch.tasks.wrapper import task_wrapper


@task_wrapper
def match(cfg: DictConfig) -> Run:
    """Run and score the retrieval at depth top_n, record it, and write the match export to `cfg.out`."""
    if isinstance(cfg.top_n, bool) or not isinstance(cfg.top_n, int) or cfg.top_n < 1:
        raise ConfigError(f"top_n={cfg.top_n!r} must be a positive integer (matches per query card)")
    result, loggers = retrieve(cfg, k=cfg.top_n)
    metrics = score(result)
    if inst.records_results(cfg):
        record(result, metrics, cfg.paths.output_dir, loggers, cfg.log_examples)
        export = write_export(result, Path(cfg.out), cfg.top_n)
        print(
            f"{len(export)} matches of {len(result.queries)} query cards ({result.description}) -> {cfg.out}"
        )
    return Run(cfg.paths.output_dir, metrics, result)
