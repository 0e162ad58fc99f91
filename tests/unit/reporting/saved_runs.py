"""Finished run dirs written as the entry points write them: a pipeline result, saved, scored."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prodmatch.layout import BEFORE_FIT
from prodmatch.retrieval.artifacts import write_matches, write_metrics
from prodmatch.retrieval.evaluation import score
from prodmatch.retrieval.result import RetrievalResult

KS = (1, 5, 10, 20)


def run_retrieval(queries: Any, database: Any, k: int) -> RetrievalResult:
    """TF-IDF title retrieval with exact search: the cheapest real pipeline run."""
    from prodmatch.encoders.tfidf import TfidfEncoder
    from prodmatch.retrieval.index import ExactIndex
    from prodmatch.retrieval.pipeline import RetrievalPipeline

    pipeline = RetrievalPipeline([{"encoder": "tfidf", "view": "title"}], k=k, index=ExactIndex)
    return pipeline.run(queries, database, {"tfidf": TfidfEncoder(dim=32)})


def save_run(
    run_dir: Path,
    result: RetrievalResult,
    experiment: str,
    task: str = "evaluate",
    study: Mapping[str, Any] | None = None,
    before_fit: bool = False,
    mtime: float | None = None,
) -> Path:
    """Save ``result`` as the run of ``experiment`` (resolved config, matches, metrics), as `record` does."""
    config = {"experiment_name": experiment, "task_name": task, "data": {"name": "synthetic"}, "study": study}
    result = dataclasses.replace(result, config=config)
    metrics = score(result)
    if before_fit:  # a training run: the before-fit figures come from an evaluation before training
        metrics |= {k: v / 2 for k, v in score(result, stage=BEFORE_FIT).items()}
    result.save(run_dir)
    write_matches(result, run_dir)
    write_metrics(metrics, run_dir)
    if mtime is not None:
        os.utime(run_dir / "metrics.json", (mtime, mtime))
    return run_dir
