"""Index backends: agreement with brute force, ties, memory budgets, padding, persistence, validation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prodmatch.errors import ConfigError
from prodmatch.retrieval.index import AnnoyIndex, ExactIndex, FaissIndex
from prodmatch.retrieval.metrics import ann_recall


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(queries: np.ndarray, db: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Full float64 sort by (descending cosine, ascending id)."""
    scores = unit(queries.astype(np.float64)) @ unit(db.astype(np.float64)).T
    ids = np.arange(db.shape[0])
    order = np.array([np.lexsort((ids, -row)) for row in scores])[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def clustered(n_db: int, n_queries: int, dim: int, n_clusters: int, seed: int = 0, noise: float = 0.5):
    """(queries, db) drawn around the same cluster centres, like embeddings of product groups."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim))
    n = n_db + n_queries
    x = (centres[rng.integers(0, n_clusters, n)] + noise * rng.standard_normal((n, dim))).astype(np.float32)
    return x[:n_queries], x[n_queries:]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return clustered(2000, 150, 32, n_clusters=200)


# 2000 x 4 bytes = 7.8 KiB per full score row: 1024 MB holds every query at once, 0.1 MB about a dozen,
# 0.01 MB one query against database blocks of ~2600 rows, 0.001 MB one query against blocks of 262 rows.
BUDGETS_MB = [1024, 0.1, 0.01, 0.001]


@pytest.mark.parametrize("max_memory_mb", BUDGETS_MB)
def test_exact_matches_brute_force_at_any_budget(data, max_memory_mb):
    queries, db = data
    ids, scores = ExactIndex(max_memory_mb=max_memory_mb).build(db).search(queries, 10)
    ref_ids, ref_scores = brute_force(queries, db, 10)
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and ids.shape == (150, 10)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_exact_scores_are_cosines_of_returned_items(data):
    queries, db = data
    ids, scores = ExactIndex().build(db * 7.0).search(queries * 0.1, 5)  # scale must not matter
    cos = np.einsum("qd,qkd->qk", unit(queries), unit(db)[ids])
    np.testing.assert_allclose(scores, cos, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_ties_break_by_lower_id_across_the_cut():
    # Entries +-1 in 16-d have norm 4 exactly, so every cosine is an exact multiple of 1/16: many exact ties,
    # independent of BLAS summation order.
    rng = np.random.default_rng(3)
    db = rng.choice([-1.0, 1.0], size=(300, 16)).astype(np.float32)
    db[50:60] = db[5]  # duplicate cards: ten exact copies of row 5
    queries = np.vstack([db[5], rng.choice([-1.0, 1.0], size=(40, 16))]).astype(np.float32)
    for budget in (1024, 0.001):
        ids, scores = ExactIndex(max_memory_mb=budget).build(db).search(queries, 8)
        ref_ids, ref_scores = brute_force(queries, db, 8)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    assert ids[0].tolist() == [5, *range(50, 57)]


@pytest.mark.parametrize("max_memory_mb", [1024, 0.0001])
def test_exact_all_equal_scores_take_lowest_ids(max_memory_mb):
    db = np.zeros((9, 4), dtype=np.float32)  # zero rows: every cosine is 0, all tied
    ids, scores = ExactIndex(max_memory_mb=max_memory_mb).build(db).search(np.ones((2, 4)), 4)
    assert ids.tolist() == [[0, 1, 2, 3]] * 2
    assert (scores == 0).all()


def test_exact_pads_when_db_smaller_than_k():
    db = np.eye(3, 4, dtype=np.float32)
    ids, scores = ExactIndex().build(db).search(np.array([[0, 1, 0, 0]], dtype=np.float32), 5)
    assert ids.tolist() == [[1, 0, 2, -1, -1]]
    assert scores[0, 0] == pytest.approx(1.0) and np.isneginf(scores[0, 3:]).all()


def test_exact_save_load_round_trip(tmp_path, data):
    queries, db = data
    index = ExactIndex().build(db)
    path = tmp_path / "sub" / "exact.index"
    index.save(path)
    assert path.is_file()  # written at exactly the given name, no ".npy" appended
    loaded = ExactIndex.load(path)
    assert len(loaded) == len(index) == 2000 and loaded.dim == 32
    for a, b in zip(index.search(queries, 10), loaded.search(queries, 10), strict=True):
        np.testing.assert_array_equal(a, b)


def test_annoy_recall_against_exact_on_clustered_data(data):
    queries, db = data
    exact_ids, _ = ExactIndex().build(db).search(queries, 10)
    ann_ids, ann_scores = AnnoyIndex(n_trees=50, seed=0).build(db).search(queries, 10)
    assert ann_ids.dtype == np.int64 and ann_scores.dtype == np.float32 and ann_ids.shape == (150, 10)
    assert ann_recall(ann_ids, exact_ids, 10) > 0.9
    cos = np.einsum("qd,qkd->qk", unit(queries), unit(db)[ann_ids])
    np.testing.assert_allclose(ann_scores, cos, atol=1e-4)
    assert (np.diff(ann_scores, axis=1) <= 1e-6).all()


@pytest.mark.parametrize("metric", ["euclidean", "dot"])
def test_annoy_other_metrics_also_return_cosines(data, metric):
    queries, db = data
    ids, scores = AnnoyIndex(metric=metric, n_trees=10).build(db).search(queries[:20], 5)
    cos = np.einsum("qd,qkd->qk", unit(queries[:20]), unit(db)[ids])
    np.testing.assert_allclose(scores, cos, atol=1e-4)


def test_annoy_is_reproducible_for_a_seed(data):
    queries, db = data
    a = AnnoyIndex(n_trees=5, seed=1).build(db).search(queries, 10)[0]
    b = AnnoyIndex(n_trees=5, seed=1).build(db).search(queries, 10)[0]
    np.testing.assert_array_equal(a, b)


def test_annoy_pads_when_db_smaller_than_k():
    db = np.eye(3, 4, dtype=np.float32)
    ids, scores = AnnoyIndex(n_trees=3).build(db).search(np.array([[1, 0, 0, 0]], dtype=np.float32), 5)
    assert ids[0, 0] == 0 and sorted(ids[0, :3].tolist()) == [0, 1, 2] and ids[0, 3:].tolist() == [-1, -1]
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-6) and np.isneginf(scores[0, 3:]).all()


def test_annoy_save_load_round_trip(tmp_path, data):
    queries, db = data
    index = AnnoyIndex(n_trees=10, seed=2).build(db)
    before = index.search(queries, 10)
    path = tmp_path / "idx" / "db.ann"
    index.save(path)
    meta = json.loads((tmp_path / "idx" / "db.ann.json").read_text())
    assert meta["dim"] == 32 and meta["n_trees"] == 10 and meta["metric"] == "angular"
    loaded = AnnoyIndex.load(path)
    assert len(loaded) == 2000 and loaded.dim == 32 and loaded.n_trees == 10
    for a, b in zip(before, loaded.search(queries, 10), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", [ExactIndex, AnnoyIndex, FaissIndex])
def test_validation_messages(cls, tmp_path):
    index = cls()
    with pytest.raises(RuntimeError, match="build"):
        index.search(np.ones((1, 4)), 3)
    with pytest.raises(ValueError, match="2-D"):
        index.build(np.ones(4))
    bad = np.ones((5, 4), dtype=np.float32)
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values in 1 rows \\(first: row 3\\)"):
        index.build(bad)
    index.build(np.ones((5, 4)))
    with pytest.raises(ValueError, match="dimension 3 but the index holds 4-d"):
        index.search(np.ones((2, 3)), 2)
    with pytest.raises(ConfigError, match="positive integer"):
        index.search(np.ones((2, 4)), 0)
    with pytest.raises(ConfigError, match="not found"):
        cls.load(tmp_path / "missing.index")


def test_bad_constructor_values():
    with pytest.raises(ConfigError, match="ANNOY metric"):
        AnnoyIndex(metric="cosine")
    with pytest.raises(ConfigError, match="n_trees"):
        AnnoyIndex(n_trees=0)
    with pytest.raises(ConfigError, match="search_k"):
        AnnoyIndex(search_k=0)
    with pytest.raises(ConfigError, match="max_memory_mb"):
        ExactIndex(max_memory_mb=0)
    with pytest.raises(ConfigError, match="chunk_size"):
        ExactIndex(chunk_size=0)
    with pytest.raises(ConfigError, match="kind"):
        FaissIndex(kind="flat")
    with pytest.raises(ConfigError, match="must divide the vector dimension 4"):
        FaissIndex(kind="ivfpq", m=3, nlist=1).build(np.ones((50, 4)))
    with pytest.raises(ConfigError, match="needs at least 256 database rows to train, got 50"):
        FaissIndex(kind="ivfpq", m=2, nlist=1).build(np.ones((50, 4)))


def test_zero_vectors_do_not_produce_nan():
    db = np.array([[0, 0], [1, 0], [0, 1]], dtype=np.float32)
    q = np.array([[0, 0], [1, 1]], dtype=np.float32)
    for index in (ExactIndex(), AnnoyIndex(n_trees=2), FaissIndex(kind="hnsw")):
        ids, scores = index.build(db).search(q, 3)
        assert np.isfinite(scores).all(), type(index).__name__
        assert sorted(ids[1, :2].tolist()) == [1, 2]


def hnsw(**kw) -> FaissIndex:
    return FaissIndex(kind="hnsw", M=16, ef_construction=100, ef_search=200, n_jobs=1, **kw)


def ivfpq(**kw) -> FaissIndex:
    # m = dim: one dimension per 8-bit sub-quantizer, so PQ error is small; nprobe = nlist scans every list.
    return FaissIndex(kind="ivfpq", nlist=16, nprobe=16, m=32, nbits=8, seed=0, n_jobs=1, **kw)


def ivfflat(**kw) -> FaissIndex:
    # 16 lists, 8 scanned: exact cosines within the scanned lists
    return FaissIndex(**{"kind": "ivfflat", "nlist": 16, "nprobe": 8, "seed": 0, "n_jobs": 1} | kw)


def ivfpq_refined(**kw) -> FaissIndex:
    # coarse codes (8 sub-quantizers for 32 dims) : the exact re-ranking brings recall back
    return FaissIndex(kind="ivfpq", nlist=16, nprobe=16, m=8, nbits=8, seed=0, n_jobs=1, refine=10, **kw)


BACKENDS = {
    "exact": lambda: ExactIndex(max_memory_mb=0.01),
    "annoy": lambda: AnnoyIndex(n_trees=50, search_k=20000, seed=0),
    "faiss_hnsw": hnsw,
    "faiss_ivfflat": ivfflat,
    "faiss_ivfpq": ivfpq,
    "faiss_ivfpq_refined": ivfpq_refined,
}
MIN_RECALL = {
    "exact": 1.0,
    "annoy": 0.97,
    "faiss_hnsw": 0.99,
    "faiss_ivfflat": 0.9,
    "faiss_ivfpq": 0.9,
    "faiss_ivfpq_refined": 0.99,
}


@pytest.mark.parametrize("k", [1, 5, 20])
@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_backend_agrees_with_exact_at_any_k(data, name, k):
    queries, db = data
    exact_ids, _ = brute_force(queries, db, k)
    ids, scores = BACKENDS[name]().build(db).search(queries, k)
    assert ids.shape == scores.shape == (150, k) and ids.dtype == np.int64 and scores.dtype == np.float32
    assert ann_recall(ids, exact_ids, k) >= MIN_RECALL[name]
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    cos = np.einsum("qd,qkd->qk", unit(queries), unit(db)[ids])
    atol = 0.05 if name == "faiss_ivfpq" else 1e-4  # IVF-PQ scores are quantised cosines
    np.testing.assert_allclose(scores, cos, atol=atol)


def test_ivfpq_close_to_exact_up_to_quantisation(data):
    queries, db = data
    exact_ids, exact_scores = brute_force(queries, db, 10)
    ids, scores = ivfpq().build(db).search(queries, 10)
    assert ann_recall(ids, exact_ids, 10) >= 0.9
    assert np.abs(scores - exact_scores).mean() < 0.01


@pytest.mark.parametrize("name", ["faiss_hnsw", "faiss_ivfflat", "faiss_ivfpq"])
def test_faiss_pads_when_db_smaller_than_k(name):
    db = np.eye(3, 4, dtype=np.float32)
    index = {
        "faiss_hnsw": hnsw,
        "faiss_ivfflat": lambda: FaissIndex(kind="ivfflat", nlist=1, nprobe=1),
        "faiss_ivfpq": lambda: FaissIndex(kind="ivfpq", nlist=1, m=4, nbits=1, nprobe=1),
    }[name]()
    ids, scores = index.build(db).search(np.array([[1, 0, 0, 0]], dtype=np.float32), 5)
    assert ids[0, 0] == 0 and sorted(ids[0, :3].tolist()) == [0, 1, 2] and ids[0, 3:].tolist() == [-1, -1]
    assert np.isneginf(scores[0, 3:]).all() and np.isfinite(scores[0, :3]).all()


def test_ivfpq_refine_recovers_what_coarse_codes_lose(data):
    queries, db = data
    exact_ids, exact_scores = brute_force(queries, db, 10)
    coarse = FaissIndex(kind="ivfpq", nlist=16, nprobe=16, m=8, nbits=8, seed=0, n_jobs=1).build(db)
    refined = ivfpq_refined().build(db)
    ids, scores = refined.search(queries, 10)
    assert ann_recall(coarse.search(queries, 10)[0], exact_ids, 10) < 0.95
    assert ann_recall(ids, exact_ids, 10) >= 0.99
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)  # re-ranked by the exact inner product


def test_ivfflat_recall_grows_with_nprobe_to_exact_when_every_list_is_scanned(data):
    queries, db = data
    exact_ids, exact_scores = brute_force(queries, db, 10)
    index = FaissIndex(kind="ivfflat", nlist=32, nprobe=1, seed=0, n_jobs=1).build(db)
    recalls = []
    for nprobe in (1, 4, 32):
        index.nprobe = nprobe
        recalls.append(ann_recall(index.search(queries, 10)[0], exact_ids, 10))
    assert recalls[0] < recalls[1] < recalls[2] == 1.0
    np.testing.assert_allclose(index.search(queries, 10)[1], exact_scores, atol=1e-5)


def test_ivfflat_trained_through_an_hnsw_graph_is_as_good_and_reproducible(data):
    """kmeans_hnsw=True (the default from 4,096 lists on) assigns k-means points approximately; the lists it
    yields are searched exactly, so recall at full nprobe stays 1 and a seed gives the same index."""
    queries, db = data
    exact_ids, _ = brute_force(queries, db, 10)
    graph = ivfflat(nlist=32, kmeans_hnsw=True).build(db)
    flat = ivfflat(nlist=32, kmeans_hnsw=False).build(db)
    recall = {
        name: ann_recall(ix.search(queries, 10)[0], exact_ids, 10) for name, ix in [("g", graph), ("f", flat)]
    }
    assert recall["g"] >= 0.9 and abs(recall["g"] - recall["f"]) < 0.05
    again = ivfflat(nlist=32, kmeans_hnsw=True).build(db)
    np.testing.assert_array_equal(graph.search(queries, 10)[0], again.search(queries, 10)[0])
    graph.nprobe = 32
    assert ann_recall(graph.search(queries, 10)[0], exact_ids, 10) == 1.0


def test_ivf_default_lists_and_too_small_a_database():
    assert FaissIndex(kind="ivfflat")._n_lists(1_000_000) == 4000
    assert FaissIndex(kind="ivfpq")._n_lists(1_000_000) == 1000
    assert FaissIndex(kind="ivfflat")._n_lists(10_000) == 250  # at least 40 rows a list
    with pytest.raises(ConfigError, match="ivfflat with nlist=64 needs at least 64 database rows"):
        FaissIndex(kind="ivfflat", nlist=64).build(np.eye(8, 4, dtype=np.float32))


def test_refine_only_applies_to_ivfpq():
    with pytest.raises(ConfigError, match="refine"):
        FaissIndex(kind="hnsw", refine=4)
    with pytest.raises(ConfigError, match="refine"):
        FaissIndex(kind="ivfflat", refine=4)
    with pytest.raises(ConfigError, match="refine"):
        FaissIndex(kind="ivfpq", refine=-1)


@pytest.mark.parametrize(
    "make", [hnsw, ivfflat, ivfpq, ivfpq_refined], ids=["hnsw", "ivfflat", "ivfpq", "ivfpq_refined"]
)
def test_faiss_save_load_round_trip(tmp_path, data, make):
    queries, db = data
    index = make().build(db)
    before = index.search(queries, 10)
    path = tmp_path / "idx" / "db.faiss"
    index.save(path)
    meta = json.loads((tmp_path / "idx" / "db.faiss.json").read_text())
    assert meta["dim"] == 32 and meta["kind"] == index.kind and meta["n_items"] == 2000
    loaded = FaissIndex.load(path)
    assert len(loaded) == 2000 and loaded.dim == 32 and loaded.kind == index.kind
    for a, b in zip(before, loaded.search(queries, 10), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [hnsw, ivfflat, ivfpq], ids=["hnsw", "ivfflat", "ivfpq"])
def test_faiss_is_reproducible_for_a_seed(data, make):
    queries, db = data
    a = make().build(db).search(queries, 10)
    b = make().build(db).search(queries, 10)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_faiss_search_knobs_change_between_searches(data):
    queries, db = data
    index = FaissIndex(kind="ivfpq", nlist=32, nprobe=1, m=32, n_jobs=1).build(db)
    exact_ids, _ = brute_force(queries, db, 10)
    low = ann_recall(index.search(queries, 10)[0], exact_ids, 10)
    index.nprobe = 32
    assert ann_recall(index.search(queries, 10)[0], exact_ids, 10) > low


def test_faiss_restores_the_thread_count(data):
    import faiss

    before = faiss.omp_get_max_threads()
    FaissIndex(kind="hnsw", n_jobs=1).build(data[1][:100]).search(data[0][:5], 3)
    assert faiss.omp_get_max_threads() == before


def test_missing_faiss_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'prodmatch\[faiss\]'") as err:
        FaissIndex(kind="hnsw")
    assert "\n" not in str(err.value)


def test_annoy_on_disk_build_round_trip(tmp_path, data):
    queries, db = data
    disk = tmp_path / "build" / "forest.ann"
    index = AnnoyIndex(n_trees=10, seed=2, on_disk_build=disk).build(db)
    assert disk.is_file() and disk.stat().st_size > 0
    in_memory = AnnoyIndex(n_trees=10, seed=2).build(db).search(queries, 10)
    before = index.search(queries, 10)
    for a, b in zip(before, in_memory, strict=True):
        np.testing.assert_array_equal(a, b)
    index.save(tmp_path / "saved.ann")
    for a, b in zip(before, AnnoyIndex.load(tmp_path / "saved.ann").search(queries, 10), strict=True):
        np.testing.assert_array_equal(a, b)


def test_exact_budget_sets_the_tile():
    index = ExactIndex(max_memory_mb=1).build(np.ones((1000, 4)))
    assert index.tile(10_000, 20) == (262, 1000)  # 1 MiB / (1000 items x 4 bytes)
    assert ExactIndex(max_memory_mb=0.001).build(np.ones((1000, 4))).tile(50, 20) == (1, 262)
    assert ExactIndex(chunk_size=7).build(np.ones((1000, 4))).tile(50, 20) == (7, 1000)


def test_exact_near_ties_at_the_cut_are_exact(data):
    """Many items within float rounding of the k-th score: the cut must still follow (score, id)."""
    _, db = data
    base = unit(db[:1].astype(np.float64))
    rng = np.random.default_rng(5)
    near = base + 1e-7 * rng.standard_normal((300, 32))  # 300 cards a hair apart
    full = np.vstack([db, near]).astype(np.float32)
    ref_ids, ref_scores = brute_force(base.astype(np.float32), full, 10)
    for budget in BUDGETS_MB:
        ids, scores = ExactIndex(max_memory_mb=budget).build(full).search(base, 10)
        np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
        same = ExactIndex(max_memory_mb=1024).build(full).search(base, 10)
        np.testing.assert_array_equal(ids, same[0])
        np.testing.assert_array_equal(scores, same[1])


def _torch_on_cpu(index: ExactIndex) -> ExactIndex:
    """``index`` searching with torch on the CPU, as it does on a GPU."""
    index.device = "cpu"
    index.uses_torch = lambda: True
    return index


def test_exact_numpy_and_torch_give_identical_results(data):
    """The CPU (numpy) and GPU (torch) paths find candidates by different products; the results are the same."""
    _, db = data
    rng = np.random.default_rng(6)
    near = unit(db[:1].astype(np.float64)) + 1e-7 * rng.standard_normal((300, 32))
    full = np.vstack([db, near, db[:20]]).astype(np.float32)  # near-ties and duplicate cards
    queries = np.vstack([near[:3], db[:40]]).astype(np.float32)
    for budget in BUDGETS_MB:
        cpu = ExactIndex(max_memory_mb=budget, device="cpu").build(full)
        cpu.uses_torch = lambda: False
        by_numpy = cpu.search(queries, 10)
        by_torch = _torch_on_cpu(ExactIndex(max_memory_mb=budget)).build(full).search(queries, 10)
        np.testing.assert_array_equal(by_numpy[0], by_torch[0])
        np.testing.assert_array_equal(by_numpy[1], by_torch[1])


def test_exact_search_on_the_cpu_does_not_import_torch():
    code = (
        "import sys, numpy as np\n"
        "from prodmatch.retrieval.index import ExactIndex\n"
        "x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)\n"
        "ExactIndex(device='cpu').build(x).search(x[:5], 3)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


CONF = Path(__file__).resolve().parents[3] / "conf" / "retrieval" / "index"


@pytest.mark.parametrize("name", ["annoy", "exact", "faiss_hnsw", "faiss_ivfflat", "faiss_ivfpq"])
def test_index_configs_instantiate_and_search(name, data):
    """Each conf/retrieval/index/*.yaml maps 1:1 onto its constructor and gives a working index."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    node = OmegaConf.load(CONF / f"{name}.yaml")
    cfg = OmegaConf.create({"seed": 3, "index": node})
    factory = instantiate(cfg.index)
    queries, db = data
    index = factory().build(db)
    assert type(index).__name__ == node["_target_"].rsplit(".", 1)[1]
    ids, _ = index.search(queries, 10)
    assert ann_recall(ids, brute_force(queries, db, 10)[0], 10) > 0.5


def test_canonical_scores_do_not_depend_on_batching(data):
    from prodmatch.retrieval.index.exact import canonical_scores

    queries, db = data
    rng = np.random.default_rng(1)
    rows, ids = rng.integers(0, 150, 3000), rng.integers(0, 2000, 3000)
    whole = canonical_scores(queries, db, rows, ids, step=3000)
    for step in (1, 7, 512):
        np.testing.assert_array_equal(canonical_scores(queries, db, rows, ids, step), whole)
