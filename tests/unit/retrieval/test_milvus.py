"""The Milvus backend on embedded Milvus Lite: agreement with exact search, padding, collections, errors."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from prodmatch.errors import ConfigError, SearchServerError
from prodmatch.retrieval.index import ExactIndex, MilvusIndex
from prodmatch.retrieval.index.milvus import collection_name, local_uri
from prodmatch.retrieval.metrics import ann_recall


def clustered(n_db: int, n_queries: int, dim: int, n_clusters: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim))
    n = n_db + n_queries
    x = (centres[rng.integers(0, n_clusters, n)] + 0.5 * rng.standard_normal((n, dim))).astype(np.float32)
    return x[:n_queries], x[n_queries:]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return clustered(600, 40, 16, n_clusters=60)


@pytest.fixture
def lite(tmp_path) -> str:
    return str(tmp_path / "milvus.db")


def collections(uri: str) -> list[str]:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=local_uri(uri))
    try:
        return client.list_collections()
    finally:
        client.close()


@pytest.mark.parametrize(
    "index_type,index_params,search_params",
    [
        ("FLAT", {}, {}),
        ("HNSW", {"M": 16, "efConstruction": 200}, {"ef": 200}),
        ("IVF_FLAT", {"nlist": 8}, {"nprobe": 8}),  # every list scanned: exact
    ],
)
def test_milvus_lite_round_trip_equals_exact(data, lite, index_type, index_params, search_params):
    """Build + search on Milvus Lite: the exact top-10 (FLAT, and HNSW at a wide beam), cosine scores."""
    queries, db = data
    exact_ids, exact_scores = ExactIndex().build(db).search(queries, 10)
    with MilvusIndex(
        uri=lite, index_type=index_type, index_params=index_params, search_params=search_params
    ) as index:
        ids, scores = index.build(db * 3.0).search(queries, 10)  # scale must not matter: rows are normalised
        assert len(index) == 600 and index.dim == 16
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and ids.shape == (40, 10)
    assert ann_recall(ids, exact_ids, 10) >= 0.99
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_each_index_type_takes_its_own_parameters(lite):
    """The config holds every type's knobs; HNSW gets M / efConstruction / ef, IVF_FLAT nlist / nprobe."""
    both = {
        "index_params": {"M": 32, "efConstruction": 200, "nlist": None},
        "search_params": {"ef": 128, "nprobe": 16},
    }
    hnsw = MilvusIndex(uri="http://localhost:19530", index_type="HNSW", **both)
    assert hnsw._index_params(10_000) == {"M": 32, "efConstruction": 200}
    assert hnsw._params(10) == {"metric_type": "COSINE", "params": {"ef": 128}}
    assert hnsw._params(500)["params"] == {"ef": 500}  # HNSW returns at most ef results
    ivf = MilvusIndex(uri="http://localhost:19530", index_type="IVF_FLAT", **both)
    assert ivf._index_params(1_000_000) == {"nlist": 4000}  # IVF-Flat's default: 4 sqrt(N)
    # Milvus Lite reads build parameters nested under "params" (pymilvus sends them flat)
    lite_ivf = MilvusIndex(uri=lite, index_type="IVF_FLAT", **both)
    assert lite_ivf._index_params(1_000_000) == {"nlist": 4000, "params": {"nlist": 4000}}
    assert ivf._params(10) == {"metric_type": "COSINE", "params": {"nprobe": 16}}
    flat = MilvusIndex(uri=lite, index_type="FLAT", **both)
    assert flat._index_params(100) == {} and flat._params(10)["params"] == {}


def test_milvus_pads_when_db_smaller_than_k(lite):
    db = np.eye(3, 4, dtype=np.float32)
    with MilvusIndex(uri=lite, index_type="FLAT") as index:
        ids, scores = index.build(db).search(np.array([[1, 0, 0, 0]], dtype=np.float32), 5)
    assert ids[0, 0] == 0 and sorted(ids[0, :3].tolist()) == [0, 1, 2] and ids[0, 3:].tolist() == [-1, -1]
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-6) and np.isneginf(scores[0, 3:]).all()


def test_concurrent_indexes_get_their_own_collections_and_close_drops_only_their_own(data, lite):
    """Two indexes of one run on one engine (two evaluations at once, or two ranks on a server) never share a
    collection; closing one drops its collection and leaves the other searchable."""
    queries, db = data
    run = "logs/evaluate/runs/2026-12-05_10-00-00"
    a = MilvusIndex(uri=lite, run=run, index_type="FLAT").build(db)
    b = MilvusIndex(uri=lite, run=run, index_type="FLAT").build(db[::-1].copy())
    assert a.collection_name != b.collection_name
    assert a.collection_name.startswith("prodmatch_2026_12_05_10_00_00_")
    ids_a, ids_b = a.search(queries, 5)[0], b.search(queries, 5)[0]
    np.testing.assert_array_equal(ids_b, 599 - ids_a)  # each searched its own rows
    a.close()
    assert a.collection_name not in collections(lite) and b.collection_name in collections(lite)
    np.testing.assert_array_equal(b.search(queries, 5)[0], ids_b)
    name_b = b.collection_name
    del b  # garbage collected: its collection goes too
    assert name_b not in collections(lite)


def test_collection_names_carry_the_run_and_differ_per_index():
    run = "/tmp/x/multirun/2026-12-05/10-00-00/3"
    names = {collection_name(run) for _ in range(20)}
    assert len(names) == 20
    assert all(n.startswith("prodmatch_3_") and len(n) <= 200 for n in names)
    assert collection_name(run).split("_")[2] == collection_name(run).split("_")[2]  # the run's digest
    assert collection_name(run).split("_")[2] != collection_name(run + "x").split("_")[2]


def test_other_ranks_of_a_distributed_run_get_their_own_lite_file(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert local_uri(str(tmp_path / "a" / "milvus.db")) == str(tmp_path / "a" / "milvus.db")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert local_uri(str(tmp_path / "a" / "milvus.db")) == str(tmp_path / "a" / "milvus.rank1.db")


def test_save_keeps_the_collection_and_load_reopens_it(data, lite, tmp_path):
    queries, db = data
    index = MilvusIndex(uri=lite, index_type="FLAT").build(db)
    before = index.search(queries, 10)
    index.save(tmp_path / "idx" / "db.milvus")
    meta = json.loads((tmp_path / "idx" / "db.milvus").read_text())
    assert meta["collection"] == index.collection_name and meta["dim"] == 16 and meta["n_items"] == 600
    index.close()  # saved: kept
    loaded = MilvusIndex.load(tmp_path / "idx" / "db.milvus")
    assert len(loaded) == 600 and loaded.dim == 16
    for x, y in zip(before, loaded.search(queries, 10), strict=True):
        np.testing.assert_array_equal(x, y)
    loaded.close()
    assert meta["collection"] in collections(lite)


def test_validation_messages(lite, tmp_path):
    index = MilvusIndex(uri=lite, index_type="FLAT")
    with pytest.raises(RuntimeError, match="build"):
        index.search(np.ones((1, 4)), 3)
    bad = np.ones((5, 4), dtype=np.float32)
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values in 1 rows \\(first: row 3\\)"):
        index.build(bad)
    index.build(np.ones((5, 4)))
    with pytest.raises(ValueError, match="dimension 3 but the index holds 4-d"):
        index.search(np.ones((2, 3)), 2)
    with pytest.raises(ConfigError, match="positive integer"):
        index.search(np.ones((2, 4)), 0)
    index.close()
    with pytest.raises(ConfigError, match="not found"):
        MilvusIndex.load(tmp_path / "missing.milvus")
    with pytest.raises(ConfigError, match="ending in .db"):
        MilvusIndex(uri="milvus_data")
    with pytest.raises(ConfigError, match="index_type"):
        MilvusIndex(uri=lite, index_type="DISKANN")
    with pytest.raises(ConfigError, match="timeout_s"):
        MilvusIndex(uri=lite, timeout_s=0)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_one_line_naming_the_uri(data):
    uri = f"http://127.0.0.1:{closed_port()}"
    start = time.perf_counter()
    with pytest.raises(SearchServerError, match="connecting failed") as err:
        MilvusIndex(uri=uri).build(data[1])
    assert str(err.value).startswith(f"Milvus at {uri}: ") and "\n" not in str(err.value)
    assert time.perf_counter() - start < 5  # no retry loop


def test_a_silent_server_fails_after_the_timeout(data):
    """A port that accepts connections but never answers: the error comes after timeout_s, not a retry loop."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.perf_counter()
        with pytest.raises(SearchServerError, match=f"Milvus at {uri}: connecting failed"):
            MilvusIndex(uri=uri, timeout_s=1).build(data[1])
        assert time.perf_counter() - start < 10


def test_missing_pymilvus_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # makes `import pymilvus` raise ImportError
    with pytest.raises(ConfigError, match=r"pip install 'prodmatch\[milvus\]'") as err:
        MilvusIndex(uri="http://localhost:19530")
    assert "\n" not in str(err.value)


def test_missing_milvus_lite_for_a_local_file_names_the_extra(monkeypatch, lite):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "milvus_lite" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"needs Milvus Lite; pip install 'prodmatch\[milvus\]'"):
        MilvusIndex(uri=lite)
    MilvusIndex(uri="http://localhost:19530")  # a server needs no Milvus Lite (and is not contacted yet)


CONF = Path(__file__).resolve().parents[3] / "conf" / "retrieval" / "index" / "milvus.yaml"


def test_milvus_config_instantiates_and_searches_in_the_run_dir(data, tmp_path):
    """conf/retrieval/index/milvus.yaml maps 1:1 onto the constructor; the Lite file lives in the run dir."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path / "run")}, "index": OmegaConf.load(CONF)})
    queries, db = data
    with instantiate(cfg.index)() as index:
        ids, _ = index.build(db).search(queries, 10)
        assert index.uri == str(tmp_path / "run" / "milvus.db") and index.index_type == "HNSW"
        assert index.collection_name.startswith("prodmatch_run_")
    assert ann_recall(ids, ExactIndex().build(db).search(queries, 10)[0], 10) >= 0.99
