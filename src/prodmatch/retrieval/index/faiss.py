"""Approximate search with faiss: HNSW graphs (``IndexHNSWFlat``), inverted lists of full vectors
(``IndexIVFFlat``) and of compressed codes (``IndexIVFPQ``).

Vectors are L2-normalised and searched by inner product, so scores are cosines: exact ones for HNSW and
IVF-Flat (they store the vectors), product-quantised approximations for IVF-PQ (it stores 8-bit codes only,
which is what keeps a billion-vector index in memory).

Determinism. IVF-Flat and IVF-PQ train their k-means on a sample of the database drawn with ``seed``, and
faiss's k-means takes the same seed, so the trained index is a function of (data, parameters, seed).
HNSW draws its node levels from faiss's fixed internal seed; its graph is reproducible when built with one
thread (``n_jobs=1``), while a multi-threaded build inserts nodes in a thread-dependent order (as ANNOY's
does). ``n_jobs`` sets faiss's OpenMP thread count (``faiss.omp_set_num_threads``, a process-wide setting)
for the duration of each build and search and restores it afterwards; ``-1`` leaves faiss's default (all
cores). Searches are deterministic at any thread count.

GPU. With ``device="auto"`` an IVF index moves to the GPU when the installed faiss has GPU support
(faiss-gpu) and sees a GPU; faiss has no GPU HNSW, so HNSW stays on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.errors import ConfigError
from prodmatch.retrieval.index.base import (
    PAD_SCORE,
    as_matrix,
    check_k,
    positive_int,
    read_sidecar,
    write_sidecar,
)
from prodmatch.utils.atomic import atomic_path
from prodmatch.utils.vectors import l2_normalize

KINDS = ("hnsw", "ivfflat", "ivfpq")
IVF_KINDS = ("ivfflat", "ivfpq")
PARAMS = ("kind", "M", "ef_construction", "ef_search", "nlist", "m", "nbits", "nprobe", "train_size", "seed")
PARAMS += ("n_jobs", "refine", "kmeans_iters", "kmeans_hnsw")
HNSW_KMEANS_FROM = 4096  # kmeans_hnsw=None: from this many lists on, k-means assigns through an HNSW graph


def ivfflat_lists(n: int) -> int:
    """IVF-Flat's default number of lists for ``n`` rows: 4 sqrt(N), at least 40 rows a list (4,000 at 1M).

    Chosen on title TF-IDF vectors of synthetic catalogs (bench/results.md, ``--data catalog``): at 100k cards,
    recall@10 0.994 scanning 8 of the 1,264 lists and 0.997 at ``nprobe=16``, built in 16 s on 2 cores.
    """
    return max(1, min(int(4 * math.sqrt(n)), n // 40))


def import_faiss():
    """The faiss module, or one ConfigError line naming the extra to install."""
    try:
        import faiss
    except ImportError as err:
        raise ConfigError(
            "retrieval.index=faiss_* needs faiss; pip install 'prodmatch[faiss]' (or faiss-gpu on a GPU machine), "
            "or pick retrieval.index=annoy or exact"
        ) from err
    return faiss


@contextmanager
def omp_threads(faiss: Any, n_jobs: int) -> Iterator[None]:
    """Run with ``n_jobs`` OpenMP threads (-1: faiss's default), restoring the process-wide value after."""
    before = faiss.omp_get_max_threads()
    if n_jobs > 0:
        faiss.omp_set_num_threads(n_jobs)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class FaissIndex:
    """faiss HNSW (``kind="hnsw"``: M, ef_construction, ef_search), IVF-Flat (``kind="ivfflat"``: nlist,
    nprobe, train_size) or IVF-PQ (``kind="ivfpq"``: nlist, m, nbits, nprobe, train_size, refine) over unit
    vectors, scored by inner product (= cosine).

    IVF-Flat scans the ``nprobe`` lists nearest a query with exact cosines: its recall depends only on whether
    the true neighbours sit in those lists, so it keeps up where the codes' error hides close neighbours (many
    near-duplicate listings) and where a graph has no gradient to follow (many small, mutually distant product
    groups). It holds the full vectors (N x D x 4 bytes).

    ``refine=r > 0`` (IVF-PQ only) re-ranks the ``r * k`` best PQ candidates by their exact inner product
    (faiss ``IndexRefineFlat``): recall close to exact search at the cost of keeping the full vectors
    (N x D x 4 bytes) beside the codes; ``refine=0`` keeps only the codes, the memory-bounded setting.

    ``nlist=None`` picks ``sqrt(N)`` lists for IVF-PQ, ``4 sqrt(N)`` for IVF-Flat (at least 40 rows each);
    ``train_size=None`` trains on
    ``max(40 * nlist, 10000)`` sampled rows (all rows when fewer): k-means time grows with both. ``ef_search`` and ``nprobe`` may be
    changed between searches (the recall/speed knob).
    """

    def __init__(
        self,
        kind: str = "hnsw",
        M: int = 32,
        ef_construction: int = 200,
        ef_search: int = 64,
        nlist: int | None = None,
        m: int = 32,
        nbits: int = 8,
        nprobe: int = 16,
        train_size: int | None = None,
        seed: int = 0,
        n_jobs: int = -1,
        refine: int = 0,
        kmeans_iters: int = 25,
        kmeans_hnsw: bool | None = None,
        device: str = "auto",
    ) -> None:
        if kind not in KINDS:
            raise ConfigError(f"faiss index kind {kind!r} is not one of {', '.join(KINDS)}")
        self.kind = kind
        self.M = positive_int(M, "M", "HNSW links per node; 16-64 is usual")
        self.ef_construction = positive_int(ef_construction, "ef_construction")
        self.ef_search = positive_int(ef_search, "ef_search")
        self.nlist = None if nlist is None else positive_int(nlist, "nlist")
        self.m = positive_int(m, "m", "PQ sub-quantizers; it must divide the dimension")
        self.nbits = positive_int(nbits, "nbits", "8 is faiss's usual code size")
        self.nprobe = positive_int(nprobe, "nprobe")
        self.train_size = None if train_size is None else positive_int(train_size, "train_size")
        self.seed = int(seed)
        self.n_jobs = int(n_jobs)
        self.refine = int(refine)
        self.kmeans_iters = positive_int(kmeans_iters, "kmeans_iters", "faiss's default is 25")
        self.kmeans_hnsw = None if kmeans_hnsw is None else bool(kmeans_hnsw)
        if self.refine < 0 or (self.refine and kind != "ivfpq"):
            raise ConfigError(
                f"faiss refine={refine}: it must be >= 0 and only applies to kind=ivfpq (the other kinds' scores are exact)"
            )
        self.device = str(device)
        self._faiss = import_faiss()
        self._index = None
        self._dim: int | None = None
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def dim(self) -> int | None:
        return self._dim

    def _n_lists(self, n: int) -> int:
        """nlist, or the default: sqrt(N) lists for IVF-PQ (faiss's rule of thumb), :func:`ivfflat_lists` for
        IVF-Flat; at least 40 rows a list."""
        if self.nlist is not None:
            return self.nlist
        return ivfflat_lists(n) if self.kind == "ivfflat" else max(1, min(int(math.sqrt(n)), n // 40))

    def _new(self, dim: int, n: int):
        faiss = self._faiss
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self.M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
            return index
        quantizer = faiss.IndexFlatIP(dim)
        if self.kind == "ivfflat":
            index = faiss.IndexIVFFlat(quantizer, dim, self._n_lists(n), faiss.METRIC_INNER_PRODUCT)
            return self._kmeans_settings(index)
        if dim % self.m:
            raise ConfigError(
                f"faiss IVF-PQ m={self.m} must divide the vector dimension {dim}; pick a divisor"
            )
        index = faiss.IndexIVFPQ(
            quantizer, dim, self._n_lists(n), self.m, self.nbits, faiss.METRIC_INNER_PRODUCT
        )
        index.pq.cp.seed = self.seed
        return self._kmeans_settings(index)

    def _kmeans_settings(self, index):
        """Seed and iterations of the coarse k-means; with many lists, assignment through an HNSW graph.

        Exact assignment costs rows x nlist x D per iteration, which rules out the tens of thousands of lists a
        catalog of many small product groups needs (about one list per group); an HNSW graph over the centroids
        (rebuilt each iteration) makes it rows x log(nlist). The lists are then filled and searched exactly.
        """
        index.cp.seed, index.cp.niter = self.seed, self.kmeans_iters
        use_hnsw = self.kmeans_hnsw if self.kmeans_hnsw is not None else index.nlist >= HNSW_KMEANS_FROM
        if use_hnsw:
            # held here too: faiss keeps only a raw pointer, and the graph must outlive training
            self._kmeans_graph = self._faiss.IndexHNSWFlat(index.d, 32, self._faiss.METRIC_INNER_PRODUCT)
            index.clustering_index = self._kmeans_graph
        return index

    def _train_sample(self, db: np.ndarray, nlist: int) -> np.ndarray:
        """A seeded sample of rows to train on; ConfigError when the database is too small to train."""
        need = max(nlist, 2**self.nbits) if self.kind == "ivfpq" else nlist
        if db.shape[0] < need:
            what = f"nlist={nlist}, nbits={self.nbits}" if self.kind == "ivfpq" else f"nlist={nlist}"
            raise ConfigError(
                f"faiss {self.kind} with {what} needs at least {need} database rows to train, got "
                f"{db.shape[0]}; lower nlist or use faiss_hnsw or exact"
            )
        size = self.train_size or max(40 * nlist, 10_000)
        if size >= db.shape[0]:
            return db
        rows = np.sort(np.random.default_rng(self.seed).choice(db.shape[0], size, replace=False))
        return db[rows]

    def _to_device(self, index):
        faiss = self._faiss
        if self.kind not in IVF_KINDS or self.device == "cpu" or not hasattr(faiss, "StandardGpuResources"):
            return index
        if faiss.get_num_gpus() < 1 or isinstance(index, faiss.IndexRefine):
            return index  # a loaded refined index stays on the CPU (its base cannot be cloned on its own)
        self._gpu_resources = faiss.StandardGpuResources()  # must outlive the GPU index
        return faiss.index_cpu_to_gpu(self._gpu_resources, 0, index)

    def build(self, vectors: np.ndarray) -> FaissIndex:
        db = l2_normalize(as_matrix(vectors, "database vectors"))
        index = self._new(db.shape[1], db.shape[0])
        with omp_threads(self._faiss, self.n_jobs):
            if self.kind in IVF_KINDS:
                index.train(self._train_sample(db, index.nlist))
            index = self._to_device(index)
            if self.refine:
                index = self._faiss.IndexRefineFlat(index)  # keeps the full vectors for the re-ranking
            index.add(db)
        self._index, self._dim, self._n = index, int(db.shape[1]), int(db.shape[0])
        return self

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids int64 [Q, k], cosine scores float32 [Q, k]), best first, padded with -1 / -inf."""
        if self._index is None:
            raise RuntimeError("the index is empty; call build(vectors) or load(path) first")
        k = check_k(k)
        q = l2_normalize(as_matrix(queries, "query vectors", dim=self._dim))
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = max(self.ef_search, k)  # HNSW returns at most efSearch results
        else:
            self._faiss.extract_index_ivf(self._index).nprobe = self.nprobe
            if self.refine:
                self._index.k_factor = float(self.refine)
        with omp_threads(self._faiss, self.n_jobs):
            scores, ids = self._index.search(q, k)
        ids = ids.astype(np.int64, copy=False)
        scores = np.where(ids >= 0, scores, PAD_SCORE).astype(np.float32)
        return ids, scores

    def _params(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in PARAMS}

    def save(self, path: str | Path) -> None:
        """Write the faiss index at ``path`` (``faiss.write_index``) plus ``<path>.json`` with its parameters."""
        if self._index is None:
            raise RuntimeError("the index is empty; call build(vectors) before save(path)")
        faiss = self._faiss
        index = self._index
        if hasattr(faiss, "index_gpu_to_cpu") and type(index).__name__.startswith("Gpu"):
            index = faiss.index_gpu_to_cpu(index)
        with atomic_path(path) as tmp:
            faiss.write_index(index, str(tmp))
        meta = {"dim": self._dim, "n_items": self._n, "backend": "faiss"} | self._params()
        if self.kind in IVF_KINDS:
            meta["nlist"] = int(faiss.extract_index_ivf(index).nlist)
        write_sidecar(path, meta)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", **overrides: Any) -> FaissIndex:
        """Read a saved index; ``overrides`` (e.g. ``ef_search``, ``nprobe``, ``n_jobs``) replace saved values."""
        meta = read_sidecar(path, "faiss index")
        params = {key: meta[key] for key in PARAMS if key in meta} | overrides  # older files: defaults
        index = cls(device=device, **params)
        index._index = index._to_device(index._faiss.read_index(str(path)))
        index._dim, index._n = int(meta["dim"]), int(index._index.ntotal)
        return index
