"""sampled_recall: ANN recall on a seeded sample of queries against exact search."""

from __future__ import annotations

import numpy as np
import pytest

from prodmatch.retrieval.index import AnnoyIndex, ExactIndex, sample_rows, sampled_recall
from prodmatch.retrieval.metrics import ann_recall


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((100, 16))
    x = (centres[rng.integers(0, 100, 2400)] + 0.6 * rng.standard_normal((2400, 16))).astype(np.float32)
    return x[:400], x[400:]


def test_sample_rows_is_seeded_sorted_and_capped():
    a, b = sample_rows(1000, 50, seed=1), sample_rows(1000, 50, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.size == 50 and np.unique(a).size == 50 and (np.diff(a) > 0).all()
    assert not np.array_equal(a, sample_rows(1000, 50, seed=2))
    np.testing.assert_array_equal(sample_rows(30, 50), np.arange(30))


def test_sampled_recall_equals_full_recall_on_the_sample(data):
    queries, db = data
    index = AnnoyIndex(n_trees=2, seed=0).build(db)  # few trees: recall well below 1
    recall, n = sampled_recall(index, db, queries, 10, sample_size=100, seed=4)
    rows = sample_rows(400, 100, seed=4)
    expected = ann_recall(
        index.search(queries[rows], 10)[0], ExactIndex().build(db).search(queries[rows], 10)[0]
    )
    assert n == 100 and recall == pytest.approx(expected) and recall < 0.99


def test_sampled_recall_uses_given_results_and_exact_index(data):
    queries, db = data
    index = AnnoyIndex(n_trees=2, seed=0).build(db)
    ann_ids = index.search(queries, 10)[0]
    exact = ExactIndex().build(db)
    assert sampled_recall(index, db, queries, 10, 100, 4, ann_ids=ann_ids, exact=exact) == sampled_recall(
        index, db, queries, 10, 100, 4
    )
    wrong = np.full_like(ann_ids, -1)  # results passed in are what gets scored
    assert sampled_recall(index, db, queries, 10, 100, 4, ann_ids=wrong) == (0.0, 100)


def test_sampled_recall_whole_set_and_exact_index(data):
    queries, db = data
    recall, n = sampled_recall(ExactIndex().build(db), db, queries, 5, sample_size=10_000)
    assert (recall, n) == (1.0, 400)
    good = AnnoyIndex(n_trees=50, search_k=50_000).build(db)
    assert sampled_recall(good, db, queries, 5, sample_size=10_000)[0] > 0.97
