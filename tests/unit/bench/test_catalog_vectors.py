"""Catalog vectors for the scale benchmark: title TF-IDF + SVD of generated cards, cached, with near-duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from prodmatch.bench import catalog_vectors as cv
from prodmatch.bench.scale_worker import ScaleSpec, load_data, measure


def tiny(**kw) -> cv.CatalogSpec:
    # the tiny scale: 49 query cards and ~300 database cards per generator seed
    return cv.CatalogSpec(**{"db": 700, "queries": 60, "dim": 24, "fit_rows": 500, "scale": "tiny"} | kw)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    cache = tmp_path_factory.mktemp("bench-cache")
    return cache, *cv.catalog_vectors(tiny(), cache)


def test_catalog_vectors_are_unit_rows_from_enough_seeds(made):
    _, path, info = made
    matrix = np.load(path)
    assert matrix.shape == (760, 24) and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    assert info["seeds"] == 3  # ~300 database cards a seed: three seeds cover 700
    assert info["mean_duplicates_per_query"] >= 1 and info["share_of_queries_with_one"] > 0.8


def test_queries_find_their_products_other_listings(made):
    """Held-out cards of the same products: a query's nearest database card is mostly its own product's."""
    _, path, _ = made
    spec = tiny()
    cards = cv.collect_cards(spec)
    q, db = cv.load_catalog_vectors(path, spec.queries)
    top = np.argmax(q @ db.T, axis=1)
    same = cards["database_skus"][top] == cards["query_skus"]
    assert same.mean() > 0.5


def test_catalog_vectors_are_cached_and_keyed_by_every_setting(made, monkeypatch):
    cache, path, info = made
    monkeypatch.setattr(cv, "seed_cards", lambda *a: pytest.fail("the cached vectors must be reused"))
    assert cv.catalog_vectors(tiny(), cache) == (path, info)
    assert tiny(dim=16).key != tiny().key and tiny(seed=1).key != tiny().key


def test_catalog_vectors_are_reproducible(made, tmp_path):
    _, path, _ = made
    again, _ = cv.catalog_vectors(tiny(), tmp_path)
    np.testing.assert_array_equal(np.load(again), np.load(path))


def test_the_scale_worker_measures_on_catalog_vectors(made, tmp_path):
    _, path, _ = made
    spec = ScaleSpec(db=700, dim=24, queries=60, sweep_queries=20, truth=str(tmp_path / "truth.npy"))
    spec.data, spec.vectors = "catalog", str(path)
    q, db = load_data(spec)
    assert q.shape == (60, 24) and db.shape == (700, 24)
    measure("torch", spec)
    row = measure("faiss_ivfflat", spec)
    assert row["recall@10"] > 0.5 and row["params"] == {"nprobe": 16} and len(row["sweep"]) == 8
