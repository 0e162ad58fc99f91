"""Combining modalities: concatenated embeddings and two-stage re-ranking.

Weighted concatenation. With unit-norm blocks ``a_i`` (query) and ``b_i`` (database item) and weights ``w_i``,
the fused vector is ``x = [sqrt(w_1) a_1, ..., sqrt(w_m) a_m] / sqrt(sum w)``. It has unit norm, and

    cos(x_q, x_d) = sum_i w_i (a_i . b_i) / sum_i w_i

i.e. the weighted mean of the per-modality cosines; equal weights give their plain mean. (A block row that is
all zeros contributes 0 and the row is renormalised, so the identity then holds over the non-zero blocks.)
``normalize=False`` is the study's raw concatenation: blocks are joined as given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prodmatch.errors import ConfigError
from prodmatch.retrieval.index import PAD_ID, PAD_SCORE, as_matrix, check_k, pad_results
from prodmatch.utils.vectors import l2_normalize as l2_rows


def _check_weights(weights: Sequence[float], n_blocks: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_blocks,):
        raise ConfigError(f"concat weights {list(weights)} must have one value per block ({n_blocks} blocks)")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ConfigError(f"concat weights {list(weights)} must be finite, non-negative and not all zero")
    return w


def concat(
    blocks: Sequence[np.ndarray], weights: Sequence[float] | None = None, normalize: bool = True
) -> np.ndarray:
    """Fuse per-modality embeddings [N, D_i] into one float32 [N, sum D_i] matrix (see the module docstring)."""
    if len(blocks) == 0:
        raise ValueError("concat needs at least one block of embeddings")
    mats = [as_matrix(b, f"block {i}") for i, b in enumerate(blocks)]
    rows = {m.shape[0] for m in mats}
    if len(rows) != 1:
        raise ValueError(f"concat blocks must have the same number of rows, got {[m.shape[0] for m in mats]}")
    if not normalize:
        if weights is not None:
            raise ConfigError(
                "concat weights need normalize=true (they weight unit-norm blocks); drop the weights or "
                "set normalize=true"
            )
        return np.hstack(mats)
    w = np.ones(len(mats)) if weights is None else _check_weights(weights, len(mats))
    fused = np.hstack([l2_rows(m) * np.float32(np.sqrt(wi)) for m, wi in zip(mats, w, strict=True)])
    return l2_rows(fused)


def rerank(
    candidate_ids: np.ndarray, query_vecs: np.ndarray, db_vecs: np.ndarray, k: int, chunk_size: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Re-order first-stage candidates [Q, K1] by cosine in another embedding space; keep the best k.

    Candidates with id -1 (padding) sort last; equal scores keep their first-stage order (stable sort).
    Returns (ids int64 [Q, k], scores float32 [Q, k]), padded with -1 / -inf when k > K1.
    """
    k = check_k(k)
    cand = np.asarray(candidate_ids)
    db = as_matrix(db_vecs, "database vectors")
    q = as_matrix(query_vecs, "query vectors", dim=db.shape[1])
    if cand.ndim != 2 or cand.shape[0] != q.shape[0] or not np.issubdtype(cand.dtype, np.integer):
        raise ValueError(
            f"candidate_ids must be an integer array [{q.shape[0]}, K1], got {cand.dtype} {cand.shape}"
        )
    if ((cand < PAD_ID) | (cand >= db.shape[0])).any():
        raise ValueError(f"candidate_ids must lie in [0, {db.shape[0]}) or be -1 (padding)")
    cand = cand.astype(np.int64, copy=False)
    q = l2_rows(q)
    scores = np.empty(cand.shape, dtype=np.float32)
    for start in range(0, cand.shape[0], chunk_size):  # bounds the [chunk, K1, D] gather
        part = cand[start : start + chunk_size]
        gathered = db[np.where(part >= 0, part, 0)]
        norms = np.sqrt(np.einsum("qkd,qkd->qk", gathered, gathered))  # ~5x faster than linalg.norm here
        dots = np.einsum("qd,qkd->qk", q[start : start + chunk_size], gathered)
        scores[start : start + chunk_size] = dots / np.where(norms > 0, norms, 1.0)
    scores[cand < 0] = PAD_SCORE
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    ids = np.take_along_axis(cand, order, axis=1)
    return pad_results(ids, np.take_along_axis(scores, order, axis=1), k)
