"""Query expansion (alpha-QE): a constructed case it fixes, and no change when it is off."""

from __future__ import annotations

import numpy as np
import pytest

from prodmatch.encoders.tfidf import TfidfEncoder
from prodmatch.errors import ConfigError
from prodmatch.retrieval.expansion import QueryExpansion
from prodmatch.retrieval.index import ExactIndex
from prodmatch.retrieval.metrics import sku_metrics
from prodmatch.retrieval.pipeline import RetrievalPipeline


def _unit(degrees: float) -> np.ndarray:
    rad = np.deg2rad(degrees)
    return np.array([np.cos(rad), np.sin(rad)], dtype=np.float32)


def test_expansion_finds_the_other_listing_through_the_first():
    # Query at 0°; its product's listings at 20° and 55°, another product's at -40° (closer than 55°).
    db = np.stack([_unit(20), _unit(55), _unit(-40)])
    db_skus, q_skus = ["A", "A", "B"], ["A"]
    query = _unit(0)[None]
    index = ExactIndex().build(db)
    ids, scores = index.search(query, 2)
    assert ids.tolist() == [[0, 2]]
    expanded = QueryExpansion(top=1, alpha=1.0).expand(query, db, ids, scores)
    assert np.linalg.norm(expanded, axis=1) == pytest.approx(1.0)
    new_ids, _ = index.search(expanded, 2)
    assert new_ids.tolist() == [[0, 1]]
    before = sku_metrics(q_skus, db_skus, ids, 2)["sku_full_recall@2"]
    after = sku_metrics(q_skus, db_skus, new_ids, 2)["sku_full_recall@2"]
    assert (before, after) == (0.5, 1.0)


def test_padding_adds_nothing_and_off_is_identity():
    db = np.stack([_unit(20), _unit(55)])
    query = _unit(0)[None]
    ids, scores = np.array([[-1, -1]]), np.array([[-np.inf, -np.inf]], dtype=np.float32)
    np.testing.assert_allclose(QueryExpansion(top=2).expand(query, db, ids, scores), query)
    ids, scores = ExactIndex().build(db).search(query, 2)
    np.testing.assert_allclose(QueryExpansion(top=0).expand(query, db, ids, scores), query)


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"top": -1}, "expansion.top"), ({"alpha": -2}, "expansion.alpha")]
)
def test_bad_expansion_is_one_clear_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        QueryExpansion(**kwargs)


def test_pipeline_expansion_off_by_default_and_on_when_asked(tiny_catalogs):
    queries, database = tiny_catalogs
    encoders = {"tfidf": TfidfEncoder(dim=64, seed=0)}
    channels = [{"encoder": "tfidf", "view": "title"}]
    plain = RetrievalPipeline(channels, index=ExactIndex).run(queries, database, encoders)
    off = RetrievalPipeline(channels, index=ExactIndex, expansion=QueryExpansion(top=0)).run(
        queries, database, encoders
    )
    np.testing.assert_array_equal(plain.ids, off.ids)
    assert plain.description == off.description == "title:tfidf"
    on = RetrievalPipeline(channels, index=ExactIndex, expansion=QueryExpansion(top=2)).run(
        queries, database, encoders
    )
    assert on.ids.shape == plain.ids.shape and not np.array_equal(on.ids, plain.ids)
    assert on.description == "title:tfidf, query expansion (top-2, alpha 3)"
