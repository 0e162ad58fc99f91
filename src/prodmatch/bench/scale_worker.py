"""One scale-benchmark measurement in its own process: generate the data, build, search, sweep, report.

Run by :mod:`prodmatch.bench.scale` as ``python -m prodmatch.bench.scale_worker NAME SPEC_JSON``, so that each
backend's peak RSS (``ru_maxrss``) is its own. The peak includes the generated database and queries, which
every backend holds while it builds.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.layout import MILVUS_LITE_FILE
from prodmatch.utils.atomic import write_json
from prodmatch.utils.vectors import l2_normalize

_BLOCK = 65_536  # rows generated at a time, so generation never holds a float64 copy of the database
TRUTH_WIDTH = 4  # the exact truth keeps 4k candidates, to take in the items tied with the k-th


@dataclass
class ScaleSpec:
    """Sizes and settings shared by every worker of one scale run."""

    db: int
    dim: int
    queries: int
    k: int = 10
    seed: int = 0
    max_memory_mb: float = 1024
    sweep: bool = True
    sweep_queries: int = 1000
    truth: str | None = None  # .npy of the exact top-k ids, written by the torch worker
    out: str | None = None  # where this worker writes its JSON result
    data: str = "clusters"  # clusters (seeded around product-group centres) | catalog (title TF-IDF + SVD)
    vectors: str | None = (
        None  # catalog: the cached [queries; database] .npy (prodmatch.bench.catalog_vectors)
    )


def load_data(spec: ScaleSpec) -> tuple[np.ndarray, np.ndarray]:
    """(queries, database) of the run: generated clusters, or the cached catalog vectors."""
    if spec.data == "clusters":
        return scale_data(spec)
    # imported on use: the bare-torch worker's peak RSS holds none of the catalog modules
    from prodmatch.bench.catalog_vectors import load_catalog_vectors

    return load_catalog_vectors(spec.vectors, spec.queries)


def scale_data(spec: ScaleSpec, group_size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(queries, database): seeded float32 unit vectors around product-group centres, made block by block."""
    rng = np.random.default_rng(spec.seed)
    n_centres = max(1, (spec.db + spec.queries) // group_size)
    centres = rng.standard_normal((n_centres, spec.dim), dtype=np.float32)

    def draw(n: int) -> np.ndarray:
        out = np.empty((n, spec.dim), dtype=np.float32)
        for start in range(0, n, _BLOCK):
            rows = min(_BLOCK, n - start)
            block = centres[rng.integers(0, n_centres, rows)]
            block += rng.standard_normal((rows, spec.dim), dtype=np.float32)
            out[start : start + rows] = l2_normalize(block, inplace=True)
        return out

    queries = draw(spec.queries)
    return queries, draw(spec.db)


def bare_torch_topk(
    queries: np.ndarray, db: np.ndarray, k: int, max_memory_mb: float, with_scores: bool = False
):
    """The baseline: torch matmul + topk over query chunks whose score matrix fits the same budget. Returns
    the ids, or (scores, ids) with ``with_scores``."""
    import torch

    rows = max(1, int(max_memory_mb * 2**20) // (4 * db.shape[0]))
    q_t, db_t = torch.from_numpy(np.ascontiguousarray(queries)), torch.from_numpy(np.ascontiguousarray(db))
    ids, scores = [], []
    with torch.inference_mode():
        for start in range(0, q_t.shape[0], rows):
            top = torch.topk(q_t[start : start + rows] @ db_t.T, k, dim=1)
            ids.append(top.indices)
            scores.append(top.values)
    ids_np = torch.cat(ids).numpy()
    return (torch.cat(scores).numpy(), ids_np) if with_scores else ids_np


def truth_with_ties(
    queries: np.ndarray, db: np.ndarray, k: int, max_memory_mb: float
) -> tuple[np.ndarray, dict[str, float]]:
    """The exact top-k, widened to every item tied with the k-th (to float32 error): ids [Q, TRUTH_WIDTH * k],
    -1 past the ties. Catalogs hold cards with identical titles, whose order among equals is arbitrary: any of
    them is a right answer. Also the share of queries with ties across the cut, and of those cut short."""
    from prodmatch.retrieval.index.exact import error_bound  # imported on use: the worker holds no backend

    width = min(TRUTH_WIDTH * k, db.shape[0])
    scores, ids = bare_torch_topk(queries, db, width, max_memory_mb, with_scores=True)
    keep = scores >= scores[:, k - 1 : k] - error_bound(db.shape[1])
    keep[:, :k] = True
    wider = keep[:, k:].any(axis=1)
    facts = {"ties_at_cut": float(wider.mean()), "ties_cut_short": float(keep[:, -1].mean())}
    return np.where(keep, ids, -1).astype(np.int64), facts


def tie_recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean share of the k found ids that are in the (tie-widened) exact top-k."""
    hit = (found[:, :k, None] == truth[:, None, :]).any(axis=2) & (found[:, :k] >= 0)
    return float((hit.sum(axis=1) / k).mean())


def _backends(spec: ScaleSpec) -> dict[str, tuple[Callable[[], Any], str | None, list[int]]]:
    """name -> (index factory, search knob swept, knob values). Settings follow conf/retrieval/index/, with
    every build on all cores (torch uses them too); Milvus runs embedded (Milvus Lite) in a temporary folder."""
    # imported where the backends are built: the bare-torch worker's peak RSS holds none of their modules
    from prodmatch.retrieval.index import AnnoyIndex, ExactIndex, FaissIndex, MilvusIndex

    seed = spec.seed
    # beside this worker's output (the run's temporary folder), never in the working directory
    given = spec.out or spec.truth
    folder = Path(given).parent if given else Path(tempfile.mkdtemp(prefix="prodmatch-bench-"))
    lite = str(folder / MILVUS_LITE_FILE)
    return {
        "exact": (lambda: ExactIndex(max_memory_mb=spec.max_memory_mb), None, []),
        "annoy": (
            lambda: AnnoyIndex(n_trees=50, search_k=10_000, seed=seed, n_jobs=-1),
            "search_k",
            [-1, 1_000, 2_000, 5_000, 10_000, 30_000],
        ),
        "faiss_hnsw": (
            lambda: FaissIndex(kind="hnsw", M=32, ef_construction=200, ef_search=64, seed=seed, n_jobs=-1),
            "ef_search",
            [16, 32, 64, 128, 256, 512],
        ),
        "faiss_ivfflat": (
            lambda: FaissIndex(kind="ivfflat", nprobe=16, kmeans_iters=10, seed=seed, n_jobs=-1),
            "nprobe",
            [1, 2, 4, 8, 16, 32, 64, 128],
        ),
        "faiss_ivfpq": (
            lambda: FaissIndex(kind="ivfpq", m=32, nbits=8, nprobe=16, seed=seed, n_jobs=-1),
            "nprobe",
            [1, 4, 16, 64, 256],
        ),
        "faiss_ivfpq_refine": (
            lambda: FaissIndex(kind="ivfpq", m=32, nbits=8, nprobe=16, refine=10, seed=seed, n_jobs=-1),
            "nprobe",
            [1, 4, 16, 64, 256],
        ),
        "milvus": (
            lambda: MilvusIndex(
                uri=lite, index_type="HNSW", index_params={"M": 32, "efConstruction": 200},
                search_params={"ef": 128}, run="bench",
            ),
            "ef",
            [16, 32, 64, 128, 256],
        ),
        "milvus_ivfflat": (
            lambda: MilvusIndex(
                uri=lite, index_type="IVF_FLAT", search_params={"nprobe": 16}, run="bench",
            ),
            "nprobe",
            [1, 2, 4, 8, 16, 32, 64],
        ),
    }  # fmt: skip


def get_knob(index: Any, knob: str) -> Any:
    """A search knob: an attribute (ANNOY, faiss) or an entry of ``search_params`` (Milvus)."""
    return getattr(index, knob) if hasattr(index, knob) else index.search_params[knob]


def set_knob(index: Any, knob: str, value: int) -> None:
    if hasattr(index, knob):
        setattr(index, knob, value)
    else:
        index.search_params[knob] = value


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def measure(name: str, spec: ScaleSpec) -> dict[str, Any]:
    """Build and search one backend (or the bare-torch baseline, ``name="torch"``) and report the figures."""
    queries, db = load_data(spec)
    row: dict[str, Any] = {"backend": name}
    if name == "torch":
        bare_torch_topk(queries[:8], db, spec.k, spec.max_memory_mb)  # warm-up: thread pool, allocator
        row["query_s"], _ = _timed(lambda: bare_torch_topk(queries, db, spec.k, spec.max_memory_mb))
        row["build_s"] = 0.0
        if spec.truth:  # a second, untimed pass
            truth, row["truth"] = truth_with_ties(queries, db, spec.k, spec.max_memory_mb)
            np.save(spec.truth, truth)
    else:
        factory, knob, values = _backends(spec)[name]
        row["build_s"], index = _timed(lambda: factory().build(db))
        index.search(queries[:8], spec.k)  # warm-up
        del db  # the index holds what it needs, as a caller that frees its embeddings would
        if name == "exact":  # its alternating timing doubles as the query time: no third full pass
            figures, ids = _exact_vs_torch(index, queries, spec)
            row |= figures
            row["query_s"] = figures["exact_query_s_alternating"]
        else:
            row["query_s"], (ids, _) = _timed(lambda: index.search(queries, spec.k))
        row["params"] = {knob: get_knob(index, knob)} if knob else {}
        truth = np.load(spec.truth)
        row[f"recall@{spec.k}"] = tie_recall(ids, truth, spec.k)
        if spec.sweep and knob:
            row["sweep"] = _sweep(index, knob, values, queries, truth, spec)
    row["queries_per_s"] = spec.queries / row["query_s"]
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return row


def _exact_vs_torch(
    index, queries: np.ndarray, spec: ScaleSpec, repeats: int | None = None
) -> tuple[dict[str, float], np.ndarray]:
    """Bare torch and exact search timed alternately in this process, best of ``repeats`` each; (figures, ids).

    The cross-process ratio is exposed to the load drifting between processes on a shared machine. The
    baseline searches the index's own (normalised) copy, so no second database is held. ``repeats=None``:
    two below 10^9 query x database pairs, one above (a pass at 10,000 x 1M takes minutes on 2 cores).
    """
    if repeats is None:
        repeats = 2 if spec.queries * spec.db < 10**9 else 1
    db = index.vectors
    bare_torch_topk(queries[:8], db, spec.k, spec.max_memory_mb)
    torch_s, exact_s = [], []
    for _ in range(repeats):
        torch_s.append(_timed(lambda: bare_torch_topk(queries, db, spec.k, spec.max_memory_mb))[0])
        seconds, (ids, _) = _timed(lambda: index.search(queries, spec.k))
        exact_s.append(seconds)
    figures = {
        "torch_query_s": min(torch_s),
        "exact_query_s_alternating": min(exact_s),
        "ratio_to_torch_same_process": min(exact_s) / min(torch_s),
        "repeats": repeats,
    }
    return figures, ids


def _sweep(index, knob: str, values: list[int], queries, truth, spec: ScaleSpec) -> list[dict[str, Any]]:
    """Recall and queries/s at each value of the search knob, on the first ``sweep_queries`` queries."""
    n = min(spec.sweep_queries, queries.shape[0])
    points = []
    for value in values:
        set_knob(index, knob, value)
        seconds, (ids, _) = _timed(lambda: index.search(queries[:n], spec.k))
        recall = tie_recall(ids, truth[:n], spec.k)
        points.append({knob: value, f"recall@{spec.k}": recall, "queries_per_s": n / seconds, "queries": n})
    return points


def main(argv: list[str] | None = None) -> None:
    name, spec_json = (sys.argv[1:] if argv is None else argv)[:2]
    spec = ScaleSpec(**json.loads(spec_json))
    row = measure(name, spec)
    row["spec"] = asdict(spec)
    write_json(spec.out, row)


if __name__ == "__main__":
    main()
