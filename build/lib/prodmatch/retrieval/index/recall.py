"""ANN recall measured on a seeded sample of queries, instead of a second full exact search."""

from __future__ import annotations

import numpy as np

from prodmatch.retrieval.index.base import Index, as_matrix, check_k
from prodmatch.retrieval.index.exact import ExactIndex


def sample_rows(n: int, sample_size: int, seed: int = 0) -> np.ndarray:
    """Sorted row positions of a seeded sample of ``min(sample_size, n)`` rows out of ``n`` (all when fewer)."""
    if sample_size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, sample_size, replace=False))


def sampled_recall(
    index: Index,
    db_vectors: np.ndarray,
    query_vectors: np.ndarray,
    k: int,
    sample_size: int = 1000,
    seed: int = 0,
    ann_ids: np.ndarray | None = None,
    exact: ExactIndex | None = None,
) -> tuple[float, int]:
    """(recall@k of ``index``'s top-k against the exact top-k, number of sampled queries).

    The queries are a seeded sample of ``sample_size`` rows (all when there are fewer). ``ann_ids`` [Q, >= k]
    are the index's results for *all* queries when the caller already has them (no second ANN search);
    ``exact`` is an already built ExactIndex over ``db_vectors`` (saves normalising the database again). An
    ExactIndex scores 1.0 by definition, without a second search.
    """
    from prodmatch.retrieval.metrics import ann_recall  # pandas comes with it: only import when measuring

    k = check_k(k)
    queries = as_matrix(query_vectors, "query vectors")
    rows = sample_rows(queries.shape[0], int(sample_size), seed)
    if isinstance(index, ExactIndex):
        return 1.0, int(rows.size)
    sample = queries[rows]
    found = index.search(sample, k)[0] if ann_ids is None else np.asarray(ann_ids)[rows, :k]
    truth = (exact or ExactIndex().build(db_vectors)).search(sample, k)[0]
    return ann_recall(found, truth, k), int(rows.size)
