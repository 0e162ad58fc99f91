"""ExactIndex and AnnoyIndex: correctness against brute force, ties, padding, persistence, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prodmatch.errors import ConfigError
from prodmatch.retrieval.index import AnnoyIndex, ExactIndex, topk_rows
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


@pytest.mark.parametrize("chunk_size", [7, 64, 4096])
def test_exact_matches_brute_force_across_chunks(data, chunk_size):
    queries, db = data
    ids, scores = ExactIndex(chunk_size=chunk_size).build(db).search(queries, 10)
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
    for chunk in (3, 4096):
        ids, scores = ExactIndex(chunk_size=chunk).build(db).search(queries, 8)
        ref_ids, ref_scores = brute_force(queries, db, 8)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    assert ids[0].tolist() == [5, *range(50, 57)]


def test_topk_rows_all_equal_row_takes_lowest_ids():
    ids, scores = topk_rows(np.zeros((2, 9), dtype=np.float32), 4)
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


@pytest.mark.parametrize("cls", [ExactIndex, AnnoyIndex])
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
    with pytest.raises(ConfigError, match="chunk_size"):
        ExactIndex(chunk_size=0)


def test_zero_vectors_do_not_produce_nan():
    db = np.array([[0, 0], [1, 0], [0, 1]], dtype=np.float32)
    q = np.array([[0, 0], [1, 1]], dtype=np.float32)
    for index in (ExactIndex(), AnnoyIndex(n_trees=2)):
        ids, scores = index.build(db).search(q, 3)
        assert np.isfinite(scores).all(), type(index).__name__
        assert sorted(ids[1, :2].tolist()) == [1, 2]


def test_bench_smoke(tmp_path, capsys):
    """The benchmark module runs end to end at a tiny size and writes its markdown table."""
    from prodmatch import bench

    out = tmp_path / "bench" / "results.md"
    text = bench.main(
        [
            "--out",
            str(out),
            "--queries",
            "30",
            "--db",
            "300",
            "--dim",
            "16",
            "--repeats",
            "1",
            "--encode-images",
            "4",
        ]
    )
    assert out.read_text() == text and "| benchmark | size | time | notes |" in text
    assert "recall@10 vs exact" in text and "same top-10 as ExactIndex: yes" in text
    assert "same value as metric_dict: yes" in text
    assert "batching is" in text
    assert text in capsys.readouterr().out
    rows = bench.run_benches(bench.BenchConfig(queries=5, db=40, dim=8, repeats=1), [bench.bench_fusion])
    assert len(rows) == 1 and rows[0].seconds > 0
