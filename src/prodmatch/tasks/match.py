"""The match task: every query card's top-k database matches, with scores and both cards' key columns, in the run
dir's ``matches.csv`` (the one export); the retrieval is scored and recorded like an evaluation."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from prodmatch.layout import MATCHES_FILE
from prodmatch.retrieval.evaluation import record, score
from prodmatch.tasks import instantiators as inst
from prodmatch.tasks.evaluate import retrieve
from prodmatch.tasks.run import Run
from prodmatch.tasks.summary import format_summary, run_title
from prodmatch.tasks.wrapper import task_wrapper


@task_wrapper
def match(cfg: DictConfig) -> Run:
    """Run, score and record the configured retrieval at ``retrieval.k``; prints what it computed and where."""
    result, loggers = retrieve(cfg)
    metrics = score(result)
    if inst.records_results(cfg):
        record(result, metrics, cfg.paths.output_dir, loggers, cfg.log_examples)
        print(format_summary(run_title(cfg, result.search.get("index")), metrics, result.k))
        found = int((result.top_ids >= 0).sum())
        print(
            f"{found} matches of {len(result.queries)} query cards ({result.description}, top-{result.k} each) "
            f"-> {Path(cfg.paths.output_dir) / MATCHES_FILE}"
        )
    return Run(cfg.paths.output_dir, metrics, result)
