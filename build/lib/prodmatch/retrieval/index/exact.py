"""Exact cosine search: torch ``matmul`` + ``topk`` in chunks bounded by a memory budget.

The database is scanned in tiles of (queries x database rows) whose float32 score matrix fits
``max_memory_mb``: as many queries per tile as the budget allows against the whole database, or one query
against database blocks when even one full score row does not fit. Each tile keeps its top ``2k`` candidates
(plus the best excluded score), so memory never grows with ``N x chunk``.

Identical results at any budget. A BLAS or cuBLAS product picks its kernel (and so its summation order) by
matrix shape, so the same (query, item) pair can differ in the last bit between tile sizes. The matmul is
therefore only used to *find* candidates: the returned scores are recomputed for the candidates in float64, one
pair at a time, and rounded to float32, and the top-k is taken by (descending score, ascending id). A
row is redone exactly, over every item within the product's error bound of its k-th score, when its k-th
score is not clear of the best excluded candidate by that bound (near-ties around the cut, duplicate cards).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from prodmatch.errors import ConfigError
from prodmatch.retrieval.index.base import as_matrix, check_k, pad_results, positive_int
from prodmatch.utils.atomic import save_npy
from prodmatch.utils.vectors import l2_normalize

_SCORE_BYTES = 4  # one float32 score per (query, item) pair in a tile


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else as given."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but torch sees no GPU; use device=auto or device=cpu")
    return device


def error_bound(dim: int) -> float:
    """A bound on |float32 matmul - exact| for unit vectors, plus float32 rounding of the recomputed score."""
    return (dim + 2) * 2.0**-23


def canonical_scores(
    q: np.ndarray, db: np.ndarray, rows: np.ndarray, ids: np.ndarray, step: int
) -> np.ndarray:
    """float32 cosines of the pairs (q[rows[i]], db[ids[i]]), by one float64 reduction per pair.

    numpy's einsum reduces each pair on its own, in the same order at any batch size (the index tests check
    this), unlike a matrix product whose kernel depends on the matrix shape.
    """
    out = np.empty(ids.shape[0], dtype=np.float32)
    for start in range(0, ids.shape[0], step):
        sl = slice(start, start + step)
        out[sl] = np.einsum("pd,pd->p", q[rows[sl]], db[ids[sl]], dtype=np.float64)
    return out


class ExactIndex:
    """Brute-force cosine search with torch, memory-bounded and deterministic.

    ``max_memory_mb`` bounds the score tile (float32 [queries, database rows]); the database itself and the
    torch runtime come on top. ``device="auto"`` uses the GPU when torch sees one (the database is copied to
    it once). ``chunk_size`` optionally caps the queries per tile as well. Equal scores rank the lower
    database id first, and results are identical at any budget (see the module docstring).
    """

    def __init__(
        self, max_memory_mb: float = 1024, device: str = "auto", chunk_size: int | None = None
    ) -> None:
        if (
            isinstance(max_memory_mb, bool)
            or not isinstance(max_memory_mb, (int, float))
            or max_memory_mb <= 0
        ):
            raise ConfigError(
                f"max_memory_mb must be a positive number (got {max_memory_mb!r}); about 1024 suits most machines"
            )
        self.max_memory_mb = float(max_memory_mb)
        self.device = str(device)
        self.chunk_size = None if chunk_size is None else positive_int(chunk_size, "chunk_size")
        self._db: np.ndarray | None = None
        self._db_t = None  # torch view (CPU) or copy (GPU) of self._db, made on first search

    def __len__(self) -> int:
        return 0 if self._db is None else int(self._db.shape[0])

    @property
    def dim(self) -> int | None:
        return None if self._db is None else int(self._db.shape[1])

    @property
    def vectors(self) -> np.ndarray:
        """The normalised database rows, as searched."""
        return self._require_built()

    def build(self, vectors: np.ndarray) -> ExactIndex:
        self._db = l2_normalize(as_matrix(vectors, "database vectors"))
        self._db_t = None
        return self

    def _require_built(self) -> np.ndarray:
        if self._db is None:
            raise RuntimeError("the index is empty; call build(vectors) or load(path) first")
        return self._db

    def _torch_db(self):
        import torch

        if self._db_t is None:
            with warnings.catch_warnings():  # a read-only memory map: torch only ever reads it
                warnings.simplefilter("ignore", UserWarning)
                self._db_t = torch.from_numpy(self._require_built()).to(resolve_device(self.device))
        return self._db_t

    def tile(self, n_queries: int, n_candidates: int) -> tuple[int, int]:
        """(queries per tile, database rows per tile) that keep the float32 score tile within the budget."""
        n = len(self)
        budget = int(self.max_memory_mb * 2**20) // _SCORE_BYTES
        if budget >= n:
            rows, block = max(1, budget // n), n
        else:
            rows, block = 1, max(budget, n_candidates + 1)
        if self.chunk_size is not None:
            rows = min(rows, self.chunk_size)
        return min(rows, n_queries), block

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids int64 [Q, k], cosine scores float32 [Q, k]), best first, padded when k > len(self)."""
        import torch

        db = self._require_built()
        k = check_k(k)
        q = l2_normalize(as_matrix(queries, "query vectors", dim=db.shape[1]))
        n, kk = db.shape[0], min(k, db.shape[0])
        n_cand = min(2 * kk, n)  # twice k: the cut at k is then almost always clear of near-ties
        rows, block = self.tile(q.shape[0], n_cand)
        ids = np.empty((q.shape[0], kk), dtype=np.int64)
        scores = np.empty((q.shape[0], kk), dtype=np.float32)
        db_t = self._torch_db()
        with torch.inference_mode():
            for start in range(0, q.shape[0], rows):
                sl = slice(start, start + rows)
                q_t = torch.from_numpy(q[sl]).to(db_t.device)
                cand, excluded = self._candidates(q_t, db_t, n_cand, block)
                ids[sl], scores[sl] = self._finish(q[sl], q_t, db_t, cand, excluded, kk, block)
        return pad_results(ids, scores, k)

    @staticmethod
    def _candidates(q_t, db_t, n_cand: int, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n_cand`` ids per query by matmul score, and the best score left out (-inf if none)."""
        import torch

        best_v = best_i = None
        excluded = torch.full((q_t.shape[0],), -torch.inf, device=q_t.device)
        for b0 in range(0, db_t.shape[0], block):
            s = q_t @ db_t[b0 : b0 + block].T
            v, i = torch.topk(s, min(n_cand + 1, s.shape[1]), dim=1)
            i += b0
            if best_v is not None:
                v, i = torch.cat([best_v, v], dim=1), torch.cat([best_i, i], dim=1)
            if v.shape[1] > n_cand:
                v, pos = torch.topk(v, n_cand + 1, dim=1)
                i = torch.gather(i, 1, pos)
                excluded = torch.maximum(excluded, v[:, n_cand])
                v, i = v[:, :n_cand], i[:, :n_cand]
            best_v, best_i = v, i
        return best_i.cpu().numpy(), excluded.cpu().numpy()

    def _finish(self, q, q_t, db_t, cand, excluded, kk: int, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-kk from the candidates; rows whose cut is not clear of the excluded score are redone."""
        db = self._db
        step = self._pair_step()
        rows = np.repeat(np.arange(q.shape[0]), cand.shape[1])
        canon = canonical_scores(q, db, rows, cand.ravel(), step).reshape(cand.shape)
        ids, scores = _lex_top(cand, canon, kk)
        unclear = np.flatnonzero(scores[:, -1] - excluded <= error_bound(q.shape[1]))
        for r in unclear:
            ids[r], scores[r] = self._redo_row(q, q_t, db_t, int(r), scores[r, -1], kk, block, step)
        return ids, scores

    def _redo_row(self, q, q_t, db_t, r: int, kth: float, kk: int, block: int, step: int):
        """Exact top-kk of one query over every item whose matmul score is within the bound of ``kth``."""
        import torch

        floor = kth - error_bound(q.shape[1])
        found = []
        for b0 in range(0, db_t.shape[0], block):
            s = db_t[b0 : b0 + block] @ q_t[r]
            found.append(torch.nonzero(s >= floor).flatten().cpu().numpy() + b0)
        cand = np.concatenate(found)
        canon = canonical_scores(q, self._db, np.full(cand.shape, r), cand, step)
        ids, scores = _lex_top(cand[None], canon[None], kk)
        return ids[0], scores[0]

    def _pair_step(self) -> int:
        """Pairs per rescoring batch: two [pairs, D] float32 gathers within the budget."""
        return max(1, int(self.max_memory_mb * 2**20) // (8 * max(1, self.dim or 1)))

    def save(self, path: str | Path) -> None:
        """Write the normalised database as one ``.npy`` file at exactly ``path`` (atomically)."""
        save_npy(path, self._require_built())

    @classmethod
    def load(
        cls,
        path: str | Path,
        max_memory_mb: float = 1024,
        device: str = "auto",
        chunk_size: int | None = None,
        mmap: bool = True,
    ) -> ExactIndex:
        """Open a saved database (memory-mapped by default, so it is never held twice)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"exact index file {path} not found; build and save the index first or fix the path"
            )
        index = cls(max_memory_mb=max_memory_mb, device=device, chunk_size=chunk_size)
        index._db = np.load(path, mmap_mode="r" if mmap else None)
        return index


def _lex_top(cand: np.ndarray, scores: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the kk (id, score) pairs ranked by descending score, then ascending id."""
    by_id = np.argsort(cand, axis=1, kind="stable")
    cand, scores = np.take_along_axis(cand, by_id, axis=1), np.take_along_axis(scores, by_id, axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
    return np.take_along_axis(cand, order, axis=1).astype(np.int64), np.take_along_axis(scores, order, axis=1)
