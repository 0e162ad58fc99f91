"""The one evaluation stage: run the pipeline, score the result, record it (evaluate.py, match.py, training).

- :func:`score` turns a result into the contract's flat metric keys (any k);
- :func:`record` writes metrics.json, matches.csv and the saved result into the run dir (atomically) and
  sends the metrics and an example table to the loggers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prodmatch.retrieval import artifacts
from prodmatch.retrieval.metrics import metric_dict
from prodmatch.retrieval.result import RetrievalResult

log = logging.getLogger("prodmatch.retrieval")

PREFIX = "retrieval/"


def score(result: RetrievalResult, prefix: str = PREFIX) -> dict[str, float]:
    """Acc@k overall and per target, SKU measures where both catalogs have SKUs, the ANN recall, data counts."""
    with_sku = result.queries.skus is not None and result.database.skus is not None
    metrics = metric_dict(
        result.queries.targets,
        result.database.targets,
        result.top_ids,
        k=result.k,
        query_skus=result.queries.skus if with_sku else None,
        db_skus=result.database.skus if with_sku else None,
        prefix=prefix,
    )
    recall_key = f"ann_recall@{result.k}"
    if recall_key in result.search:
        metrics[prefix + recall_key] = float(result.search[recall_key])
        metrics[prefix + "ann_recall_sample"] = float(result.search.get("ann_recall_sample", 0))
    base = prefix.replace(PREFIX, "")  # "before_fit/" for the before-fit evaluation, "" otherwise
    metrics |= {f"{base}data/{key}": float(n) for key, n in result.data.items()}
    return metrics


def record(
    result: RetrievalResult,
    metrics: Mapping[str, float],
    run_dir: str | Path,
    loggers: Sequence[Any] = (),
    examples: int = 0,
    step: int | None = None,
) -> None:
    """Write the run's artifacts and send metrics (and an example table) to every logger."""
    from prodmatch.tracking import log_examples, log_metrics

    run_dir = Path(run_dir)
    result.save(run_dir)
    artifacts.write_matches(result, run_dir)
    artifacts.write_metrics(metrics, run_dir)
    log_metrics(loggers, metrics, step=step)
    log_examples(loggers, result, examples)
