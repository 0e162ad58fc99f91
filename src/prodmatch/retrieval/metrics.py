"""Retrieval metrics over a [Q, k] matrix of retrieved database row ids (``-1`` = padding, always a miss).

- **Acc@k** (the study's metric): per query, the share of its top-k results whose target equals the query's
  target; averaged over queries, overall and per query target. Equals torchmetrics' ``RetrievalPrecision``
  (``top_k=k``) over the retrieved lists.
- **sku_recall@k**: share of eligible queries with at least one same-SKU card in their top-k (torchmetrics'
  ``RetrievalHitRate``). **sku_mrr**: mean over eligible queries of 1 / rank of the first same-SKU card within
  the top-k, 0 when there is none (``RetrievalMRR``). A query is *eligible* when its SKU is non-empty and
  occurs in the database: the others cannot be matched, so they are excluded and counted instead.
  SKUs compare as exact strings after stripping surrounding whitespace.
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

log = logging.getLogger("prodmatch.retrieval")

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


def _hits(query_labels: pd.Series, db_labels: pd.Series, ids: np.ndarray) -> np.ndarray:
    """Boolean [Q, k]: retrieved item has the query's label. Missing labels and padding never match."""
    codes, _ = pd.factorize(pd.concat([query_labels, db_labels], ignore_index=True), use_na_sentinel=True)
    q_codes, db_codes = codes[: len(query_labels)], codes[len(query_labels) :]
    # Append a never-matching code so that id -1 (padding) indexes it: db_ext[-1] is the sentinel.
    db_ext = np.append(np.where(db_codes >= 0, db_codes, _NO_MATCH), _NO_MATCH)
    return (db_ext[ids] == q_codes[:, None]) & (q_codes[:, None] >= 0)


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


def sku_metrics(
    query_skus: Sequence[str | None], db_skus: Sequence[str | None], ids: np.ndarray, k: int = 10
) -> dict[str, float | int]:
    """SKU recall@k and MRR over eligible queries, plus the counts of queries left out and why.

    Keys: ``sku_recall@{k}``, ``sku_mrr`` (NaN when no query is eligible), ``sku_queries`` (eligible),
    ``sku_missing`` (query SKU empty), ``sku_not_in_db`` (query SKU absent from the database).
    """
    qs, ds = _labels(query_skus, "query"), _labels(db_skus, "db")
    ids = _check_ids(ids, len(qs), len(ds), k)
    missing = qs.isna().to_numpy()
    in_db = qs.isin(set(ds.dropna())).to_numpy()
    eligible = ~missing & in_db
    hits = _hits(qs, ds, ids)[eligible]
    found = hits.any(axis=1)
    first_rank = hits.argmax(axis=1) + 1  # argmax gives the first True; rank is 1-based
    rr = np.where(found, 1.0 / first_rank, 0.0)
    n = int(eligible.sum())
    return {
        f"sku_recall@{k}": float(found.mean()) if n else float("nan"),
        "sku_mrr": float(rr.mean()) if n else float("nan"),
        "sku_queries": n,
        "sku_missing": int(missing.sum()),
        "sku_not_in_db": int((~missing & ~in_db).sum()),
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
    prefix: str = "retrieval/",
) -> dict[str, float]:
    """Flat metric keys: ``{prefix}acc@{k}``, ``{prefix}acc@{k}/<target>`` for each query target, and, when
    their inputs are given, ``{prefix}ann_recall@{k}``, ``{prefix}sku_recall@{k}`` and ``{prefix}sku_mrr``."""
    overall, per_target = acc_at_k(query_targets, db_targets, ids, k)
    out = {f"{prefix}acc@{k}": overall}
    out |= {f"{prefix}acc@{k}/{t}": v for t, v in per_target.items()}
    if (ann_ids is None) != (exact_ids is None):
        raise ValueError("ann_recall needs both ann_ids and exact_ids (or neither)")
    if ann_ids is not None:
        out[f"{prefix}ann_recall@{k}"] = ann_recall(ann_ids, exact_ids, k)
    if query_skus is not None and db_skus is not None:
        sku = sku_metrics(query_skus, db_skus, ids, k)
        out[f"{prefix}sku_recall@{k}"] = sku[f"sku_recall@{k}"]
        out[f"{prefix}sku_mrr"] = sku["sku_mrr"]
        log.info(
            "SKU metrics over %d queries (%d without SKU, %d with a SKU absent from the database)",
            sku["sku_queries"],
            sku["sku_missing"],
            sku["sku_not_in_db"],
        )
    elif query_skus is not None or db_skus is not None:
        log.info("SKU metrics skipped: only one of the two catalogs has SKUs")
    return out
