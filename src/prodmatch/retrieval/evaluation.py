"""The one evaluation stage: run the pipeline, score the result, record it (evaluate.py, match.py, training).

- :func:`score` turns a result into the contract's flat metric keys (any k);
- :func:`record` writes metrics.json, matches.csv and the saved result into the run dir (atomically) and
  sends the metrics and an example table to the loggers.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch import layout
from prodmatch.retrieval import artifacts
from prodmatch.retrieval.metrics import SKU_KEYS, choose_threshold, match_metrics, metric_dict
from prodmatch.retrieval.protocol import (
    THRESHOLD_GROUP,
    check_scored,
    group_counts,
    query_split,
    scored_groups,
)
from prodmatch.retrieval.result import RetrievalResult
from prodmatch.tracking import log_examples, log_metrics

log = logging.getLogger("prodmatch.retrieval")


def score(result: RetrievalResult, stage: str = "") -> dict[str, float]:
    """Acc@k overall and per target, SKU measures where both catalogs have SKUs, the ANN recall, data counts.

    Under the product protocol (the queries carry a ``split`` column) the ranking keys and ``match/*`` are over
    the test products' queries, and the same keys prefixed ``seen/`` over the train and val products' queries
    (see :mod:`prodmatch.retrieval.protocol`); ``split/<group>`` counts the query cards of each group.
    ``stage`` (:data:`prodmatch.layout.STAGES`) goes in front of every key: the training callback's
    ``before_fit/`` and ``epoch/`` evaluations.
    """
    split = query_split(result.queries)
    if split is None:
        metrics = _ranking(result, np.ones(len(result.queries), dtype=bool), layout.retrieval_prefix(stage))
    else:
        metrics = _product(result, split, stage)
    recall = layout.ann_recall_name(result.k)
    if recall in result.search:
        metrics[layout.retrieval_key(recall, stage)] = float(result.search[recall])
        sample = float(result.search.get(layout.ANN_RECALL_SAMPLE, 0))
        metrics[layout.retrieval_key(layout.ANN_RECALL_SAMPLE, stage)] = sample
    metrics |= {layout.data_key(name, stage): float(n) for name, n in result.data.items()}
    metrics |= {
        layout.fusion_weight_key(label, stage): float(w) for label, w in result.fusion_weights.items()
    }
    return metrics


def _with_sku(result: RetrievalResult) -> bool:
    return result.queries.skus is not None and result.database.skus is not None


def _ranking(result: RetrievalResult, rows: np.ndarray, prefix: str) -> dict[str, float]:
    """Acc@k (overall, per target) and the SKU measures of the top-k, over the query cards at ``rows``."""
    with_sku = _with_sku(result)
    if not rows.any():  # an empty group: its keys exist, without a value
        keys = [layout.acc_name(result.k), *(key.format(k=result.k) for key in SKU_KEYS if with_sku)]
        return {prefix + key: float("nan") for key in keys}
    queries = result.queries
    return metric_dict(
        queries.targets[rows],
        result.database.targets,
        result.top_ids[rows],
        k=result.k,
        query_skus=queries.skus[rows] if with_sku else None,
        db_skus=result.database.skus if with_sku else None,
        prefix=prefix,
    )


def match_threshold(result: RetrievalResult, rows: np.ndarray) -> float:
    """The match threshold of the best mean F1 over the query cards at ``rows`` (NaN when none has a match)."""
    skus = result.queries.skus
    try:
        return choose_threshold(result.scores[rows], result.ids[rows], skus[rows], result.database.skus)
    except ValueError:
        log.warning("no validation query has a same-SKU database card: match/* are left without a value")
        return float("nan")


def _product(result: RetrievalResult, split: np.ndarray, stage: str) -> dict[str, float]:
    """The product protocol's keys: headline (test products) and seen/ (train and val products)."""
    check_scored(split)
    threshold = match_threshold(result, split == THRESHOLD_GROUP)
    metrics: dict[str, float] = {}
    for group, rows in scored_groups(split).items():
        metrics |= _ranking(result, rows, layout.retrieval_prefix(stage, group))
        metrics |= _match(result, rows, threshold, layout.match_prefix(stage, group))
    counts = group_counts(split)
    log.info("product protocol: query cards per product group %s", counts)
    return metrics | {layout.split_key(group, stage): float(n) for group, n in counts.items()}


def _match(result: RetrievalResult, rows: np.ndarray, threshold: float, prefix: str) -> dict[str, float]:
    """match/* at ``threshold`` over the query cards at ``rows``; every candidate of the ranking counts."""
    if not np.isfinite(threshold):
        keys = ("precision", "recall", "f1", "threshold")
        return {prefix + key: float("nan") for key in keys}
    skus = result.queries.skus
    ids, scores = result.ids[rows], result.scores[rows]
    return match_metrics(scores, ids, skus[rows], result.database.skus, threshold, prefix=prefix)


def record(
    result: RetrievalResult,
    metrics: Mapping[str, float],
    run_dir: str | Path,
    loggers: Sequence[Any] = (),
    examples: int = 0,
    step: int | None = None,
) -> None:
    """Write the run's artifacts and send metrics (and an example table) to every logger."""
    run_dir = Path(run_dir)
    result.save(run_dir)
    artifacts.write_matches(result, run_dir)
    artifacts.write_metrics(metrics, run_dir)
    log_metrics(loggers, metrics, step=step)
    log_examples(loggers, result, examples)


def weight_curve(
    pipeline: Any,
    queries: Any,
    database: Any,
    encoders: Any,
    weights: Sequence[Sequence[float]],
    cache: Any = None,
) -> list[dict[str, Any]]:
    """:func:`score` of a concat pipeline at each fixed weight vector: the trade-off behind a chosen weight.

    Each point reruns the pipeline; with an embedding cache every run after the first looks its vectors up.
    """
    rows = []
    for w in weights:
        fixed = copy.copy(pipeline)
        fixed.concat_weights = [float(x) for x in w]
        rows.append({"weights": fixed.concat_weights} | score(fixed.run(queries, database, encoders, cache)))
    return rows
