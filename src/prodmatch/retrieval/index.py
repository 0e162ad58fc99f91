"""Nearest-neighbour indexes over embedding rows: exact cosine search and ANNOY.

Both indexes share one small interface::

    index.build(vectors)                 # float [N, D]
    ids, scores = index.search(queries, k)   # int64 [Q, k], float32 [Q, k] cosine similarity, best first
    index.save(path); Index.load(path); len(index)

Scores are always cosine similarities, so exact and approximate results are comparable. When the database
holds fewer than ``k`` items (or ANNOY finds fewer), rows are padded with id ``-1`` and score ``-inf`` so the
result keeps its ``[Q, k]`` shape; metrics count padded slots as misses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from prodmatch.errors import ConfigError

PAD_ID = -1
PAD_SCORE = -np.inf


def as_matrix(x: object, name: str, dim: int | None = None) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 [N, D] array; ValueError on a bad shape or non-finite values."""
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [rows, dim], got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has dimension {arr.shape[1]} but the index holds {dim}-d vectors")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{name} has NaN or infinite values in {rows.size} rows (first: row {rows[0]}); "
            "check the encoder output before indexing"
        )
    return arr


def l2_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows (float32); all-zero rows stay zero instead of turning into NaN."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


def check_k(k: int) -> int:
    """Validate the number of neighbours asked for."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer (got {k!r}); ask for at least one neighbour")
    return int(k)


def pad_results(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad [Q, m] results (m <= k) to [Q, k] with id -1 and score -inf."""
    missing = k - ids.shape[1]
    if missing <= 0:
        return ids, scores
    q = ids.shape[0]
    ids = np.hstack([ids, np.full((q, missing), PAD_ID, dtype=np.int64)])
    scores = np.hstack([scores, np.full((q, missing), PAD_SCORE, dtype=np.float32)])
    return ids, scores


def topk_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns of each row, by descending score with ties broken by the lower column index.

    ``argpartition`` is O(N) per row but arbitrary among equal values, so rows where the k-th value is tied
    beyond the cut are redone exactly: everything above the threshold plus the lowest-index ties.
    """
    n = scores.shape[1]
    if k >= n:
        order = np.argsort(-scores, axis=1, kind="stable")
        return order.astype(np.int64), np.take_along_axis(scores, order, axis=1)
    cand = np.argpartition(scores, n - k, axis=1)[:, n - k :]
    thr = np.take_along_axis(scores, cand, axis=1).min(axis=1, keepdims=True)
    tied = (scores >= thr).sum(axis=1) > k
    if tied.any():
        rows = np.flatnonzero(tied)
        sub, t = scores[rows], thr[rows]
        above, equal = sub > t, sub == t
        need = k - above.sum(axis=1, keepdims=True)
        keep = above | (equal & (np.cumsum(equal, axis=1) <= need))
        cand[rows] = np.nonzero(keep)[1].reshape(rows.size, k)
    cand.sort(axis=1)  # ascending ids, so the stable sort below breaks score ties by the lower id
    top = np.take_along_axis(scores, cand, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    return np.take_along_axis(cand, order, axis=1).astype(np.int64), np.take_along_axis(top, order, axis=1)


class ExactIndex:
    """Brute-force cosine search: one normalised matrix product + top-k per chunk of queries.

    Peak memory is about ``chunk_size * N * 16`` bytes (float32 scores plus int64 partition indices), so
    lower ``chunk_size`` for very large databases.
    """

    def __init__(self, chunk_size: int = 4096) -> None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise ConfigError(f"chunk_size must be a positive integer (got {chunk_size!r})")
        self.chunk_size = int(chunk_size)
        self._db: np.ndarray | None = None

    def __len__(self) -> int:
        return 0 if self._db is None else int(self._db.shape[0])

    @property
    def dim(self) -> int | None:
        return None if self._db is None else int(self._db.shape[1])

    def build(self, vectors: np.ndarray) -> ExactIndex:
        self._db = l2_rows(as_matrix(vectors, "database vectors"))
        return self

    def _require_built(self) -> np.ndarray:
        if self._db is None:
            raise RuntimeError("the index is empty; call build(vectors) or load(path) first")
        return self._db

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids int64 [Q, k], cosine scores float32 [Q, k]), best first, padded when k > len(self)."""
        db = self._require_built()
        k = check_k(k)
        q = l2_rows(as_matrix(queries, "query vectors", dim=db.shape[1]))
        kk = min(k, db.shape[0])
        ids = np.empty((q.shape[0], kk), dtype=np.int64)
        scores = np.empty((q.shape[0], kk), dtype=np.float32)
        for start in range(0, q.shape[0], self.chunk_size):
            stop = start + self.chunk_size
            ids[start:stop], scores[start:stop] = topk_rows(np.asarray(q[start:stop] @ db.T), kk)
        return pad_results(ids, scores, k)

    def save(self, path: str | Path) -> None:
        """Write the normalised database as one ``.npy`` file at exactly ``path``."""
        db = self._require_built()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:  # a file handle keeps np.save from appending ".npy"
            np.save(fh, db)

    @classmethod
    def load(cls, path: str | Path, chunk_size: int = 4096, mmap: bool = True) -> ExactIndex:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"exact index file {path} not found; build and save the index first or fix the path"
            )
        index = cls(chunk_size=chunk_size)
        index._db = np.load(path, mmap_mode="r" if mmap else None)
        return index


# ANNOY metrics we accept, and how each returned distance maps back to cosine similarity. Vectors are
# L2-normalised before they are added, so for unit vectors u, v: angular d = sqrt(2 - 2 cos) (ANNOY's
# definition), euclidean |u - v| = sqrt(2 - 2 cos) too, and dot = cos.
_ANNOY_TO_COSINE = {
    "angular": lambda d: 1.0 - d * d / 2.0,
    "euclidean": lambda d: 1.0 - d * d / 2.0,
    "dot": lambda d: d,
}


class AnnoyIndex:
    """Approximate search with ANNOY (random-projection forests, memory-mapped on load).

    Builds are reproducible for a fixed ``seed`` *and* ``n_jobs``: ANNOY's multi-threaded build gives each
    thread its own random stream, so the trees depend on the thread count. ``n_jobs=-1`` (all cores) is
    faster but ties the result to the machine's core count; the default ``1`` keeps runs identical anywhere.
    ``search_k=-1`` lets ANNOY inspect ``n_trees * k`` nodes; larger values trade speed for recall.
    """

    def __init__(
        self, metric: str = "angular", n_trees: int = 50, search_k: int = -1, seed: int = 0, n_jobs: int = 1
    ) -> None:
        if metric not in _ANNOY_TO_COSINE:
            raise ConfigError(f"unknown ANNOY metric {metric!r}; use one of {sorted(_ANNOY_TO_COSINE)}")
        if isinstance(n_trees, bool) or not isinstance(n_trees, (int, np.integer)) or n_trees < 1:
            raise ConfigError(f"n_trees must be a positive integer (got {n_trees!r}); the study used 50")
        if not isinstance(search_k, (int, np.integer)) or (search_k < 1 and search_k != -1):
            raise ConfigError(
                f"search_k must be -1 (ANNOY's default) or a positive integer (got {search_k!r})"
            )
        self.metric = metric
        self.n_trees = int(n_trees)
        self.search_k = int(search_k)
        self.seed = int(seed)
        self.n_jobs = int(n_jobs)
        self._index = None
        self._dim: int | None = None
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def dim(self) -> int | None:
        return self._dim

    def _new(self, dim: int):
        # Imported lazily so that exact search works where annoy is not installed.
        from annoy import AnnoyIndex as _Annoy

        index = _Annoy(dim, self.metric)
        index.set_seed(self.seed)
        return index

    def build(self, vectors: np.ndarray) -> AnnoyIndex:
        db = l2_rows(as_matrix(vectors, "database vectors"))
        index = self._new(db.shape[1])
        for i, row in enumerate(db):  # ANNOY only takes items one at a time
            index.add_item(i, row)
        index.build(self.n_trees, self.n_jobs)
        self._index, self._dim, self._n = index, int(db.shape[1]), int(db.shape[0])
        return self

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids int64 [Q, k], cosine scores float32 [Q, k]), best first, padded with -1 / -inf."""
        if self._index is None:
            raise RuntimeError("the index is empty; call build(vectors) or load(path) first")
        k = check_k(k)
        q = l2_rows(as_matrix(queries, "query vectors", dim=self._dim))
        ids = np.full((q.shape[0], k), PAD_ID, dtype=np.int64)
        dists = np.full((q.shape[0], k), np.nan, dtype=np.float64)
        nns = self._index.get_nns_by_vector
        for row, vec in enumerate(q):  # ANNOY's query API is per vector
            found, dist = nns(vec.tolist(), k, self.search_k, True)
            ids[row, : len(found)] = found
            dists[row, : len(dist)] = dist
        scores = np.where(ids >= 0, _ANNOY_TO_COSINE[self.metric](dists), PAD_SCORE).astype(np.float32)
        return ids, scores

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + ".json")

    def save(self, path: str | Path) -> None:
        """Write ANNOY's file at ``path`` plus ``<path>.json`` holding the dimension and build parameters."""
        if self._index is None:
            raise RuntimeError("the index is empty; call build(vectors) before save(path)")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._index.save(str(path))  # ANNOY re-opens the saved file memory-mapped
        meta = {"dim": self._dim, "n_items": self._n, "metric": self.metric, "n_trees": self.n_trees}
        meta |= {"search_k": self.search_k, "seed": self.seed, "n_jobs": self.n_jobs}
        self._sidecar(path).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path, search_k: int | None = None) -> AnnoyIndex:
        """Memory-map a saved index; ``search_k`` overrides the saved value."""
        path = Path(path)
        sidecar = cls._sidecar(path)
        if not path.is_file() or not sidecar.is_file():
            raise ConfigError(
                f"ANNOY index {path} or its {sidecar.name} sidecar not found; build and save the index first "
                "or fix the path"
            )
        meta = json.loads(sidecar.read_text())
        search_k = meta["search_k"] if search_k is None else search_k
        index = cls(meta["metric"], meta["n_trees"], search_k, meta["seed"], meta["n_jobs"])
        index._index = index._new(int(meta["dim"]))
        index._index.load(str(path))
        index._dim, index._n = int(meta["dim"]), int(index._index.get_n_items())
        return index
