"""Retrieval metrics over a [Q, k] matrix of retrieved database row ids (``-1`` = padding, always a miss).

- **Acc@k** (the study's metric): per query, the share of its top-k results whose target equals the query's
  target; averaged over queries, overall and per query target. Equals torchmetrics' ``RetrievalPrecision``
  (``top_k=k``) over the retrieved lists.
- **sku_recall@k**: share of eligible queries with at least one same-SKU card in their top-k (torchmetrics'
  ``RetrievalHitRate``). **sku_mrr**: mean over eligible queries of 1 / rank of the first same-SKU card within
  the top-k, 0 when there is none (``RetrievalMRR``). A query is *eligible* when its SKU is non-empty and
  occurs in the database: the others cannot be matched, so they are excluded and counted instead.
  SKUs compare as exact strings after stripping surrounding whitespace.
- **sku_precision@k**: same-SKU share of the top-k (``RetrievalPrecision`` over eligible queries).
  **sku_full_recall@k**: share of the query product's database listings found in the top-k (``RetrievalRecall``
  over the whole database). **sku_map@k**: average precision at k, sum of precision@i at the hits divided by
  min(k, listings), so a query scores 1 only when its first min(k, listings) results are all its product
  (torchmetrics' ``RetrievalMAP`` divides by the hits found instead; the tests check a per-query loop).
- **match/precision, match/recall, match/f1** (the Shopee product-matching metric): the predicted set of a
  query is every candidate scoring at least a threshold, chosen on validation queries by mean F1
  (:func:`choose_threshold`); see :func:`threshold_curve`.
- **ann_recall@k**: mean overlap of the ANN top-k with the exact top-k, over the exact top-k's real ids.

All of them are computed here with whole-array numpy operations (a [Q, k] hit matrix); torchmetrics' retrieval
classes define the same quantities but group and loop per query in Python and give no per-target breakdown.
The tests check both give the same numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from prodmatch.layout import MATCH, RETRIEVAL, acc_name

log = logging.getLogger("prodmatch.retrieval")

# The per-query SKU measures of sku_metrics, in the order metric_dict reports them.
SKU_KEYS = ("sku_recall@{k}", "sku_mrr", "sku_precision@{k}", "sku_full_recall@{k}", "sku_map@{k}")
_NO_MATCH = -2  # code for padded ids / missing database labels: never equal to a query code (>= 0)


def _labels(values: Sequence | np.ndarray, name: str) -> pd.Series:
    """Labels as a stripped object Series with missing / empty values as None."""
    s = pd.Series(np.asarray(values, dtype=object).ravel(), dtype=object)
    s = s.where(s.notna(), None)
    text = s.astype(str).str.strip()
    return text.where(s.notna() & (text != ""), None).astype(object).rename(name)


def _check_ids(ids: np.ndarray, n_queries: int, n_db: int, k: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[0] != n_queries or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be an integer array [{n_queries}, >= {k}], got {ids.dtype} {ids.shape}")
    if ids.shape[1] < k:
        raise ValueError(f"ids has {ids.shape[1]} columns but k={k}; retrieve at least k results per query")
    ids = ids[:, :k]
    if ((ids < -1) | (ids >= n_db)).any():
        raise ValueError(f"ids must lie in [0, {n_db}) or be -1 (padding)")
    return ids


def _codes(query_labels: pd.Series, db_labels: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Shared integer codes of the two label columns; -1 where a label is missing."""
    codes, _ = pd.factorize(pd.concat([query_labels, db_labels], ignore_index=True), use_na_sentinel=True)
    return codes[: len(query_labels)], codes[len(query_labels) :]


def _hits(query_labels: pd.Series, db_labels: pd.Series, ids: np.ndarray) -> np.ndarray:
    """Boolean [Q, k]: retrieved item has the query's label. Missing labels and padding never match."""
    q_codes, db_codes = _codes(query_labels, db_labels)
    # Append a never-matching code so that id -1 (padding) indexes it: db_ext[-1] is the sentinel.
    db_ext = np.append(np.where(db_codes >= 0, db_codes, _NO_MATCH), _NO_MATCH)
    return (db_ext[ids] == q_codes[:, None]) & (q_codes[:, None] >= 0)


def _listings(query_labels: pd.Series, db_labels: pd.Series) -> np.ndarray:
    """Per query, how many database rows share its label (0 for a missing label)."""
    q_codes, db_codes = _codes(query_labels, db_labels)
    counts = np.bincount(db_codes[db_codes >= 0], minlength=int(max(q_codes.max(initial=-1), 0)) + 1)
    return np.where(q_codes >= 0, counts[np.maximum(q_codes, 0)], 0)


def acc_at_k(
    query_targets: Sequence[str], db_targets: Sequence[str], ids: np.ndarray, k: int = 10
) -> tuple[float, dict[str, float]]:
    """The study's Acc@k: (overall mean over queries, {target: mean over that target's queries})."""
    qt, dt = _labels(query_targets, "query"), _labels(db_targets, "db")
    if qt.isna().any():
        raise ValueError(f"query_targets has {int(qt.isna().sum())} empty values; every query needs a target")
    ids = _check_ids(ids, len(qt), len(dt), k)
    per_query = _hits(qt, dt, ids).sum(axis=1) / k
    per_target = pd.Series(per_query).groupby(qt.to_numpy(), sort=True).mean()
    return float(per_query.mean()), {str(t): float(v) for t, v in per_target.items()}


def _average_precision(hits: np.ndarray, listings: np.ndarray) -> np.ndarray:
    """AP@k per row of a [Q, k] hit matrix, normalised by min(k, listings) relevant rows."""
    k = hits.shape[1]
    precision_at_i = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    denom = np.minimum(k, listings)
    return np.where(denom > 0, (precision_at_i * hits).sum(axis=1) / np.maximum(denom, 1), 0.0)


def sku_metrics(
    query_skus: Sequence[str | None], db_skus: Sequence[str | None], ids: np.ndarray, k: int = 10
) -> dict[str, float | int]:
    """Same-product measures over the top-k of eligible queries, plus the counts of queries left out and why.

    Keys: ``sku_recall@{k}`` (hit rate), ``sku_mrr``, ``sku_precision@{k}`` (same-SKU share of the top-k),
    ``sku_full_recall@{k}`` (share of the query product's database listings found in the top-k),
    ``sku_map@{k}`` (AP@k with min(k, listings) relevant), all NaN when no query is eligible;
    ``sku_queries`` (eligible), ``sku_missing`` (query SKU empty), ``sku_not_in_db`` (query SKU absent from
    the database).
    """
    qs, ds = _labels(query_skus, "query"), _labels(db_skus, "db")
    ids = _check_ids(ids, len(qs), len(ds), k)
    missing = qs.isna().to_numpy()
    listings = _listings(qs, ds)
    eligible = ~missing & (listings > 0)
    hits = _hits(qs, ds, ids)[eligible]
    listings = listings[eligible]
    found = hits.any(axis=1)
    first_rank = hits.argmax(axis=1) + 1  # argmax gives the first True; rank is 1-based
    per_query = {
        f"sku_recall@{k}": found,
        "sku_mrr": np.where(found, 1.0 / first_rank, 0.0),
        f"sku_precision@{k}": hits.sum(axis=1) / k,
        f"sku_full_recall@{k}": hits.sum(axis=1) / np.maximum(listings, 1),
        f"sku_map@{k}": _average_precision(hits, listings),
    }
    n = int(eligible.sum())
    out: dict[str, float | int] = {
        key: float(values.mean()) if n else float("nan") for key, values in per_query.items()
    }
    return out | {
        "sku_queries": n,
        "sku_missing": int(missing.sum()),
        "sku_not_in_db": int((~missing & ~eligible).sum()),
    }


def ann_recall(ann_ids: np.ndarray, exact_ids: np.ndarray, k: int = 10) -> float:
    """Mean |ANN top-k ∩ exact top-k| / (number of real ids in the exact top-k, = k when the db has >= k)."""
    ann, exact = np.asarray(ann_ids), np.asarray(exact_ids)
    if ann.ndim != 2 or exact.ndim != 2 or ann.shape[0] != exact.shape[0]:
        raise ValueError(f"ann_ids and exact_ids must be [Q, >= k] arrays, got {ann.shape} and {exact.shape}")
    if min(ann.shape[1], exact.shape[1]) < k:
        raise ValueError(f"ann_ids / exact_ids have fewer than k={k} columns")
    ann, exact = ann[:, :k], exact[:, :k]
    real = exact >= 0
    found = (exact[:, :, None] == ann[:, None, :]).any(axis=2) & real
    denom = real.sum(axis=1)
    per_query = np.where(denom > 0, found.sum(axis=1) / np.maximum(denom, 1), 1.0)
    return float(per_query.mean())


def metric_dict(
    query_targets: Sequence[str],
    db_targets: Sequence[str],
    ids: np.ndarray,
    *,
    k: int = 10,
    query_skus: Sequence[str | None] | None = None,
    db_skus: Sequence[str | None] | None = None,
    ann_ids: np.ndarray | None = None,
    exact_ids: np.ndarray | None = None,
    prefix: str = RETRIEVAL,
) -> dict[str, float]:
    """Flat metric keys: ``{prefix}acc@{k}``, ``{prefix}acc@{k}/<target>`` for each query target, and, when
    their inputs are given, ``{prefix}ann_recall@{k}`` and the :data:`SKU_KEYS` (``{prefix}sku_recall@{k}``,
    ``{prefix}sku_mrr``, ``{prefix}sku_precision@{k}``, ``{prefix}sku_full_recall@{k}``, ``{prefix}sku_map@{k}``)."""
    overall, per_target = acc_at_k(query_targets, db_targets, ids, k)
    out = {prefix + acc_name(k): overall}
    out |= {prefix + acc_name(k, t): v for t, v in per_target.items()}
    if (ann_ids is None) != (exact_ids is None):
        raise ValueError("ann_recall needs both ann_ids and exact_ids (or neither)")
    if ann_ids is not None:
        out[f"{prefix}ann_recall@{k}"] = ann_recall(ann_ids, exact_ids, k)
    if query_skus is not None and db_skus is not None:
        sku = sku_metrics(query_skus, db_skus, ids, k)
        for key in SKU_KEYS:
            name = key.format(k=k)
            out[f"{prefix}{name}"] = sku[name]
        log.info(
            "SKU metrics over %d queries (%d without SKU, %d with a SKU absent from the database)",
            sku["sku_queries"],
            sku["sku_missing"],
            sku["sku_not_in_db"],
        )
    elif query_skus is not None or db_skus is not None:
        log.info("SKU metrics skipped: only one of the two catalogs has SKUs")
    return out


# --------------------------------------------------------------------------- thresholded matching


def _match_counts(
    ids: np.ndarray, scores: np.ndarray, query_skus: Sequence, db_skus: Sequence
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(hits, scores, listings) of the eligible queries over all candidate columns, and their count."""
    qs, ds = _labels(query_skus, "query"), _labels(db_skus, "db")
    ids = np.asarray(ids)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != ids.shape:
        raise ValueError(f"scores {scores.shape} and ids {ids.shape} must have the same [Q, depth] shape")
    ids = _check_ids(ids, len(qs), len(ds), ids.shape[1] if ids.ndim == 2 else 0)
    listings = _listings(qs, ds)
    eligible = listings > 0
    # Padding (-1) is never predicted: its score becomes -inf, below any threshold.
    scores = np.where(ids >= 0, scores, -np.inf)[eligible]
    return _hits(qs, ds, ids)[eligible], scores, listings[eligible], int(eligible.sum())


def _prf(tp: np.ndarray, n_pred: np.ndarray, listings: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-query precision, recall, F1 (Shopee's 2|A∩B| / (|A| + |B|)); an empty prediction has precision 0."""
    precision = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 0.0)
    recall = tp / listings
    f1 = 2.0 * tp / (n_pred + listings)
    return precision, recall, f1


def threshold_curve(
    scores: np.ndarray,
    ids: np.ndarray,
    query_skus: Sequence[str | None],
    db_skus: Sequence[str | None],
    grid: Sequence[float] | np.ndarray,
) -> dict[str, np.ndarray]:
    """Mean match precision / recall / F1 over eligible queries for every threshold of ``grid`` (vectorised).

    The predicted set of a query is {candidates with score >= t}; the true set is every database card of its
    SKU (not only those among the candidates, so a shallow candidate list caps the recall). Eligible queries
    are those of :func:`sku_metrics` (SKU present in the database): a query without a true match in the
    database is left out rather than scored F1 = 1 for an empty prediction as in Shopee, whose every query
    matched at least itself. Keys: ``threshold``, ``precision``, ``recall``, ``f1`` (arrays over the grid,
    NaN when no query is eligible) and ``queries``.
    """
    grid = np.asarray(grid, dtype=np.float64).ravel()
    hits, s, listings, n = _match_counts(ids, scores, query_skus, db_skus)
    out = {"threshold": grid, "queries": np.array(n)}
    if n == 0:
        nan = np.full(len(grid), np.nan)
        return out | {"precision": nan, "recall": nan, "f1": nan}
    sums = np.zeros((3, len(grid)))
    # Chunk the grid so that the [G, Q, depth] comparison stays small whatever the query count.
    step = max(1, int(2e7 // max(s.size, 1)))
    for lo in range(0, len(grid), step):
        above = s[None, :, :] >= grid[lo : lo + step, None, None]
        n_pred = above.sum(axis=2)
        tp = (above & hits[None]).sum(axis=2)
        sums[:, lo : lo + step] = [m.sum(axis=1) for m in _prf(tp, n_pred, listings[None])]
    precision, recall, f1 = sums / n
    return out | {"precision": precision, "recall": recall, "f1": f1}


def choose_threshold(
    scores: np.ndarray,
    ids: np.ndarray,
    query_skus: Sequence[str | None],
    db_skus: Sequence[str | None],
    grid: Sequence[float] | np.ndarray | None = None,
) -> float:
    """The threshold of ``grid`` (default 0.00, 0.01, ..., 1.00) with the highest mean match F1; the lowest
    such threshold on ties. Pick it on validation queries, then score test queries with :func:`match_metrics`."""
    grid = np.round(np.linspace(0.0, 1.0, 101), 2) if grid is None else np.asarray(grid, dtype=np.float64)
    curve = threshold_curve(scores, ids, query_skus, db_skus, grid)
    if int(curve["queries"]) == 0:
        raise ValueError("no query has a SKU present in the database: the threshold cannot be chosen")
    return float(grid[int(np.nanargmax(curve["f1"]))])


def match_metrics(
    scores: np.ndarray,
    ids: np.ndarray,
    query_skus: Sequence[str | None],
    db_skus: Sequence[str | None],
    threshold: float,
    prefix: str = MATCH,
) -> dict[str, float]:
    """``{prefix}precision``, ``{prefix}recall``, ``{prefix}f1``, ``{prefix}threshold`` at ``threshold``
    (see :func:`threshold_curve` for the definitions)."""
    curve = threshold_curve(scores, ids, query_skus, db_skus, [threshold])
    out = {f"{prefix}{key}": float(curve[key][0]) for key in ("precision", "recall", "f1")}
    return out | {f"{prefix}threshold": float(threshold)}
