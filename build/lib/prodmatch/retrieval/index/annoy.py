"""Approximate search with ANNOY (random-projection forests, memory-mapped on load)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from prodmatch.errors import ConfigError
from prodmatch.retrieval.index.base import (
    PAD_ID,
    PAD_SCORE,
    as_matrix,
    check_k,
    positive_int,
    read_sidecar,
    write_sidecar,
)
from prodmatch.utils.atomic import atomic_path
from prodmatch.utils.vectors import l2_normalize

# ANNOY metrics we accept, and how each returned distance maps back to cosine similarity. Vectors are
# L2-normalised before they are added, so for unit vectors u, v: angular d = sqrt(2 - 2 cos) (ANNOY's
# definition), euclidean |u - v| = sqrt(2 - 2 cos) too, and dot = cos.
_ANNOY_TO_COSINE = {
    "angular": lambda d: 1.0 - d * d / 2.0,
    "euclidean": lambda d: 1.0 - d * d / 2.0,
    "dot": lambda d: d,
}
_ADD_BLOCK = 8192  # rows converted to Python lists at a time: ANNOY takes one item per call


class AnnoyIndex:
    """Approximate search with ANNOY (random-projection forests, memory-mapped on load).

    Builds are reproducible for a fixed ``seed`` *and* ``n_jobs``: ANNOY's multi-threaded build gives each
    thread its own random stream, so the trees depend on the thread count. ``n_jobs=-1`` (all cores) is
    faster but ties the result to the machine's core count; the default ``1`` keeps runs identical anywhere.
    ``search_k=-1`` lets ANNOY inspect ``n_trees * k`` nodes; larger values trade speed for recall.
    ``on_disk_build`` (a file path) builds the forest in that file instead of in memory, for databases whose
    trees do not fit in RAM; the built index is then memory-mapped from it.
    """

    def __init__(
        self,
        metric: str = "angular",
        n_trees: int = 50,
        search_k: int = -1,
        seed: int = 0,
        n_jobs: int = 1,
        on_disk_build: str | Path | None = None,
    ) -> None:
        if metric not in _ANNOY_TO_COSINE:
            raise ConfigError(f"unknown ANNOY metric {metric!r}; use one of {sorted(_ANNOY_TO_COSINE)}")
        self.n_trees = positive_int(n_trees, "n_trees", "the study used 50")
        if (
            isinstance(search_k, bool)
            or not isinstance(search_k, (int, np.integer))
            or (search_k < 1 and search_k != -1)
        ):
            raise ConfigError(
                f"search_k must be -1 (ANNOY's default) or a positive integer (got {search_k!r})"
            )
        self.metric = metric
        self.search_k = int(search_k)
        self.seed = int(seed)
        self.n_jobs = int(n_jobs)
        self.on_disk_build = None if on_disk_build in (None, "") else Path(on_disk_build)
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
        try:
            from annoy import AnnoyIndex as _Annoy
        except ImportError as err:
            raise ConfigError(
                "retrieval.index=annoy needs the annoy package; pip install annoy (or pick retrieval.index=exact)"
            ) from err
        index = _Annoy(dim, self.metric)
        index.set_seed(self.seed)
        return index

    def build(self, vectors: np.ndarray) -> AnnoyIndex:
        db = l2_normalize(as_matrix(vectors, "database vectors"))
        index = self._new(db.shape[1])
        if self.on_disk_build is not None:
            self.on_disk_build.parent.mkdir(parents=True, exist_ok=True)
            index.on_disk_build(str(self.on_disk_build))  # must precede add_item
        add = index.add_item
        for start in range(0, db.shape[0], _ADD_BLOCK):  # ANNOY has no bulk add; lists convert fastest
            for i, row in enumerate(db[start : start + _ADD_BLOCK].tolist(), start):
                add(i, row)
        index.build(self.n_trees, self.n_jobs)
        self._index, self._dim, self._n = index, int(db.shape[1]), int(db.shape[0])
        return self

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids int64 [Q, k], cosine scores float32 [Q, k]), best first, padded with -1 / -inf."""
        if self._index is None:
            raise RuntimeError("the index is empty; call build(vectors) or load(path) first")
        k = check_k(k)
        q = l2_normalize(as_matrix(queries, "query vectors", dim=self._dim))
        ids = np.full((q.shape[0], k), PAD_ID, dtype=np.int64)
        dists = np.full((q.shape[0], k), np.nan, dtype=np.float64)
        nns = self._index.get_nns_by_vector
        for row, vec in enumerate(q.tolist()):  # ANNOY's query API is per vector
            found, dist = nns(vec, k, self.search_k, True)
            ids[row, : len(found)] = found
            dists[row, : len(dist)] = dist
        scores = np.where(ids >= 0, _ANNOY_TO_COSINE[self.metric](dists), PAD_SCORE).astype(np.float32)
        return ids, scores

    def save(self, path: str | Path) -> None:
        """Write ANNOY's file at ``path`` plus ``<path>.json`` holding the dimension and build parameters."""
        if self._index is None:
            raise RuntimeError("the index is empty; call build(vectors) before save(path)")
        path = Path(path)
        with atomic_path(path) as tmp:
            if self.on_disk_build is not None:  # ANNOY's save() is a no-op for an on-disk build
                shutil.copyfile(self.on_disk_build, tmp)
            else:
                self._index.save(str(tmp))  # ANNOY re-maps the file; the rename keeps that mapping valid
        meta = {"dim": self._dim, "n_items": self._n, "metric": self.metric, "n_trees": self.n_trees}
        meta |= {"search_k": self.search_k, "seed": self.seed, "n_jobs": self.n_jobs}
        write_sidecar(path, meta)

    @classmethod
    def load(cls, path: str | Path, search_k: int | None = None) -> AnnoyIndex:
        """Memory-map a saved index; ``search_k`` overrides the saved value."""
        meta = read_sidecar(path, "ANNOY index")
        search_k = meta["search_k"] if search_k is None else search_k
        index = cls(meta["metric"], meta["n_trees"], search_k, meta["seed"], meta["n_jobs"])
        index._index = index._new(int(meta["dim"]))
        index._index.load(str(path))
        index._dim, index._n = int(meta["dim"]), int(index._index.get_n_items())
        return index
