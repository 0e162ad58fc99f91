"""Query expansion: a second search with each query vector blended with its first neighbours (off by default).

alpha-query expansion (Radenović et al.), the neighbourhood blending of the Shopee product-matching winners:

    q' = normalise(q + sum_{j <= top} max(s_j, 0)^alpha * x_j)

over the query's ``top`` best database vectors ``x_j`` and their cosines ``s_j``; the query itself weighs 1 (its
cosine with itself). Neighbours of the same product pull the query towards that product's other listings.
``top=0`` turns it off. The pipeline applies it to its first-stage search (before any re-ranking).
"""

from __future__ import annotations

import numpy as np

from prodmatch.errors import ConfigError
from prodmatch.retrieval.index import as_matrix
from prodmatch.utils.vectors import l2_normalize


class QueryExpansion:
    """alpha-QE over the ``top`` first results with weights cosine^``alpha`` (see the module doc)."""

    def __init__(self, top: int = 0, alpha: float = 3.0) -> None:
        if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 0:
            raise ConfigError(f"retrieval.expansion.top={top!r} must be an integer >= 0 (0 turns it off)")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
            raise ConfigError(f"retrieval.expansion.alpha={alpha!r} must be a number >= 0")
        self.top = int(top)
        self.alpha = float(alpha)

    @property
    def enabled(self) -> bool:
        return self.top > 0

    def expand(
        self,
        query_vecs: np.ndarray,
        db_vecs: np.ndarray,
        ids: np.ndarray,
        scores: np.ndarray,
        chunk_size: int = 2048,
    ) -> np.ndarray:
        """Expanded, L2-normalised query vectors [Q, D] from a first search's ``ids`` / ``scores`` [Q, >= top]."""
        db = l2_normalize(as_matrix(db_vecs, "database vectors"))
        out = l2_normalize(as_matrix(query_vecs, "query vectors", dim=db.shape[1]))
        if not self.enabled:
            return out
        top_ids = np.asarray(ids)[:, : self.top]
        weights = np.clip(np.asarray(scores, dtype=np.float32)[:, : self.top], 0.0, None) ** self.alpha
        weights = np.where(top_ids >= 0, weights, 0.0).astype(np.float32)  # padding (-1) adds nothing
        for start in range(0, out.shape[0], chunk_size):  # bounds the [chunk, top, D] gather
            part = top_ids[start : start + chunk_size]
            gathered = db[np.where(part >= 0, part, 0)]
            out[start : start + chunk_size] += np.einsum(
                "qt,qtd->qd", weights[start : start + chunk_size], gathered
            )
        return l2_normalize(out)
