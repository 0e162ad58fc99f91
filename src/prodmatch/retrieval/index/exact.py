"""Exact cosine search: ``matmul`` + top-k in chunks bounded by a memory budget (numpy on the CPU, torch on a GPU).

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
For the same reason the candidates may come from numpy (the CPU) or torch (a GPU) with identical results.

On the CPU, search imports no torch: numpy finds the candidates unless the process has loaded torch anyway
(an image encoder, training). Importing torch alone costs seconds and ~0.5 GB, more than searching a
study-sized catalog, so a cached text evaluation would otherwise be mostly that import.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

from prodmatch.errors import ConfigError
from prodmatch.retrieval.index.base import as_matrix, check_k, pad_results, positive_int
from prodmatch.utils.atomic import save_npy
from prodmatch.utils.vectors import l2_normalize

_SCORE_BYTES = 4  # one float32 score per (query, item) pair in a tile (torch: topk needs no more)
_NUMPY_PAIR_BYTES = 12  # numpy: the float32 score plus argpartition's int64 position per pair
# Device files of the GPUs torch can use (NVIDIA, AMD ROCm): without one, torch.cuda.is_available() is False.
_GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/kfd")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; anything else as given."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but torch sees no GPU; use device=auto or device=cpu")
    return device


def gpu_possible() -> bool:
    """Whether torch could see a GPU here, asked without importing torch when it is not loaded yet."""
    if "torch" in sys.modules:
        return bool(sys.modules["torch"].cuda.is_available())
    if not any(Path(f).exists() for f in _GPU_DEVICE_FILES):
        return False
    import torch

    return bool(torch.cuda.is_available())


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
    """Brute-force cosine search, memory-bounded and deterministic.

    ``max_memory_mb`` bounds the score tile (float32 [queries, database rows], with numpy's top-k positions);
    the database itself comes on top. ``device="auto"`` uses the GPU when torch sees one (the database is copied
    to it once, searched with torch), else the CPU with numpy. ``chunk_size`` optionally caps the queries per
    tile as well. Equal scores rank the lower database id first, and results are identical at any budget and on
    either backend (see the module docstring).
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

    def uses_torch(self) -> bool:
        """Whether search runs on torch: on a GPU (``cuda...``, or ``auto`` with one), and on the CPU when the
        process has imported torch anyway (its top-k runs on every core); numpy otherwise."""
        if self.device not in ("cpu", "auto"):
            return True
        return "torch" in sys.modules or (self.device == "auto" and gpu_possible())

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

    def tile(self, n_queries: int, n_candidates: int, pair_bytes: int = _SCORE_BYTES) -> tuple[int, int]:
        """(queries per tile, database rows per tile) that keep the score tile (``pair_bytes`` per pair) within
        the budget."""
        n = len(self)
        budget = int(self.max_memory_mb * 2**20) // pair_bytes
        if budget >= n:
            rows, block = max(1, budget // n), n
        else:
            rows, block = 1, max(budget, n_candidates + 1)
        if self.chunk_size is not None:
            rows = min(rows, self.chunk_size)
        return min(rows, n_queries), block

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids int64 [Q, k], cosine scores float32 [Q, k]), best first, padded when k > len(self)."""
        db = self._require_built()
        k = check_k(k)
        q = l2_normalize(as_matrix(queries, "query vectors", dim=db.shape[1]))
        n, kk = db.shape[0], min(k, db.shape[0])
        n_cand = min(2 * kk, n)  # twice k: the cut at k is then almost always clear of near-ties
        ids = np.empty((q.shape[0], kk), dtype=np.int64)
        scores = np.empty((q.shape[0], kk), dtype=np.float32)
        if self.uses_torch():
            self._search_torch(q, n_cand, kk, ids, scores)
        else:
            rows, block = self.tile(q.shape[0], n_cand, _NUMPY_PAIR_BYTES)
            for start in range(0, q.shape[0], rows):
                sl = slice(start, start + rows)
                cand, excluded = _candidates_numpy(q[sl], db, n_cand, block)
                ids[sl], scores[sl] = self._finish(
                    q[sl], cand, excluded, kk, _matches_numpy(q[sl], db, block)
                )
        return pad_results(ids, scores, k)

    def _search_torch(self, q: np.ndarray, n_cand: int, kk: int, ids: np.ndarray, scores: np.ndarray) -> None:
        """Fill ``ids`` and ``scores`` tile by tile with torch on the index's device."""
        import torch

        rows, block = self.tile(q.shape[0], n_cand)
        db_t = self._torch_db()
        with torch.inference_mode():
            for start in range(0, q.shape[0], rows):
                sl = slice(start, start + rows)
                q_t = torch.from_numpy(q[sl]).to(db_t.device)
                cand, excluded = self._candidates(q_t, db_t, n_cand, block)
                ids[sl], scores[sl] = self._finish(
                    q[sl], cand, excluded, kk, _matches_torch(q_t, db_t, block)
                )

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

    def _finish(self, q, cand, excluded, kk: int, matches) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-kk from the candidates; rows whose cut is not clear of the excluded score are redone over
        ``matches(row, floor)``: the ids whose matmul score is at least ``floor``."""
        db = self._db
        step = self._pair_step()
        rows = np.repeat(np.arange(q.shape[0]), cand.shape[1])
        canon = canonical_scores(q, db, rows, cand.ravel(), step).reshape(cand.shape)
        ids, scores = _lex_top(cand, canon, kk)
        bound = error_bound(q.shape[1])
        for r in np.flatnonzero(scores[:, -1] - excluded <= bound):
            # exact top-kk of the row over every item whose matmul score is within the bound of its k-th
            found = matches(int(r), scores[r, -1] - bound)
            canon = canonical_scores(q, db, np.full(found.shape, r), found, step)
            top = _lex_top(found[None], canon[None], kk)
            ids[r], scores[r] = top[0][0], top[1][0]
        return ids, scores

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


def _candidates_numpy(
    q: np.ndarray, db: np.ndarray, n_cand: int, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """numpy's twin of :meth:`ExactIndex._candidates`: top ``n_cand`` ids per query by matmul score (in no
    order: the exact scores rank them) and the best score left out (-inf if none)."""
    best_v = best_i = None
    excluded = np.full(q.shape[0], -np.inf, dtype=np.float32)
    for b0 in range(0, db.shape[0], block):
        v = q @ db[b0 : b0 + block].T
        i = np.broadcast_to(np.arange(b0, b0 + v.shape[1]), v.shape)
        if best_v is not None:
            v, i = np.concatenate([best_v, v], axis=1), np.concatenate([best_i, i], axis=1)
        if v.shape[1] > n_cand:
            # position n_cand holds the (n_cand + 1)-th best score: the best one left out
            part = np.argpartition(v, v.shape[1] - n_cand - 1, axis=1)[:, ::-1][:, : n_cand + 1]
            excluded = np.maximum(excluded, np.take_along_axis(v, part[:, n_cand:], axis=1)[:, 0])
            v, i = (
                np.take_along_axis(v, part[:, :n_cand], axis=1),
                np.take_along_axis(i, part[:, :n_cand], axis=1),
            )
        best_v, best_i = v, np.array(i)
    return best_i, excluded


def _matches_numpy(q: np.ndarray, db: np.ndarray, block: int):
    """``(row, floor) -> ids`` of the database rows whose matmul score with query ``row`` is at least ``floor``."""

    def matches(r: int, floor: float) -> np.ndarray:
        found = [
            np.flatnonzero(db[b0 : b0 + block] @ q[r] >= floor) + b0 for b0 in range(0, db.shape[0], block)
        ]
        return np.concatenate(found)

    return matches


def _matches_torch(q_t, db_t, block: int):
    """:func:`_matches_numpy` with torch, on the index's device."""
    import torch

    def matches(r: int, floor: float) -> np.ndarray:
        found = []
        for b0 in range(0, db_t.shape[0], block):
            s = db_t[b0 : b0 + block] @ q_t[r]
            found.append(torch.nonzero(s >= floor).flatten().cpu().numpy() + b0)
        return np.concatenate(found)

    return matches


def _lex_top(cand: np.ndarray, scores: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the kk (id, score) pairs ranked by descending score, then ascending id."""
    by_id = np.argsort(cand, axis=1, kind="stable")
    cand, scores = np.take_along_axis(cand, by_id, axis=1), np.take_along_axis(scores, by_id, axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :kk]
    return np.take_along_axis(cand, order, axis=1).astype(np.int64), np.take_along_axis(scores, order, axis=1)
