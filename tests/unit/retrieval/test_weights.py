"""Concat weights chosen on the validation products: candidates, the choice, the pipeline's use of it."""

from __future__ import annotations

import numpy as np
import pytest

from prodmatch.encoders.tfidf import TfidfEncoder
from prodmatch.errors import ConfigError
from prodmatch.retrieval.evaluation import score
from prodmatch.retrieval.index import ExactIndex
from prodmatch.retrieval.pipeline import RetrievalPipeline
from prodmatch.retrieval.protocol import SPLIT_COLUMN
from prodmatch.retrieval.weights import WeightSearch

CHANNELS = [{"encoder": "tfidf", "view": "title"}, {"encoder": "tfidf_full", "view": "title_cat"}]


def test_candidates_sum_to_one_without_repeats_equal_weights_first():
    weights = WeightSearch(grid=[0.0, 0.5, 1.0]).candidates(2)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(weights[0], [0.5, 0.5])
    assert (
        len({tuple(np.round(w, 9)) for w in weights}) == len(weights) == 5
    )  # (.5,.5) (0,1) (1,0) (1/3,2/3) ...


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": [0.0]}, "grid"),
        ({"grid": [-1.0, 1.0]}, "grid"),
        ({"metric": "category"}, "metric"),
        ({"metric": ["sku_mrr", "acc@10"]}, "metric"),
        ({"metric": []}, "metric"),
    ],
)
def test_bad_weight_search_is_one_clear_error(kwargs, message):
    with pytest.raises(ConfigError, match=f"retrieval.weight_search.{message}"):
        WeightSearch(**kwargs)


def _channels() -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Two channels over products A, B, C (two database cards each, one query each). The good channel ranks a
    query's own product first (cos 0.82 against 0.41); the bad one shows it as the next product (cos 1)."""
    eye = np.eye(3, dtype=np.float32)
    db_skus = np.array(["A", "A", "B", "B", "C", "C"], dtype=object)
    q_skus = np.array(["A", "B", "C"], dtype=object)
    good_db = np.repeat(eye, 2, axis=0)
    good_q = eye + 0.5 * (1 - eye)
    bad_db = good_db.copy()
    bad_q = np.roll(eye, 1, axis=1)  # A looks like B, B like C, C like A
    return [good_q, bad_q], [good_db, bad_db], q_skus, db_skus


def test_weight_search_picks_the_better_weight():
    q, db, q_skus, db_skus = _channels()
    search = WeightSearch(grid=[0.0, 0.25, 0.5, 0.75, 1.0], metric="sku_mrr")
    weights, values = search.evaluate(q, db, q_skus, db_skus, k=2)
    # The fused cosine favours the own product only when the good channel weighs more than ~0.71.
    np.testing.assert_allclose(values, np.where(weights[:, 0] > 0.71, 1.0, values))
    assert values[0] < 1.0, "equal weights let the bad channel win"
    chosen = search.choose(q, db, q_skus, db_skus, k=2)
    assert chosen[0] > 0.71 and values.max() == 1.0
    f1 = WeightSearch(metric="match_f1").choose(q, db, q_skus, db_skus, k=2, depth=6)
    assert f1[0] > 0.71


def test_a_list_of_measures_values_a_channel_that_only_separates_categories():
    """Title-like channel: own product first, then A2 and B2 tie (a word they share), and the tie goes to the
    lower row, A2, another category's card for query B. Category channel: every card of a category alike. SKU measures cannot tell the category channel's weight from none; their mean
    with acc chooses a weight that fills the rest of the top-k with the right category without losing the
    product."""
    db_skus = np.array(["A", "A", "A2", "B", "B", "B2"], dtype=object)
    db_targets = np.array(["bikes"] * 3 + ["rowers"] * 3, dtype=object)
    q_skus, q_targets = np.array(["A", "B"], dtype=object), np.array(["bikes", "rowers"], dtype=object)
    title_db = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    title_q = np.array([[1, 0, 0.6], [0, 1, 0.6]], dtype=np.float32)
    category_db = np.repeat(np.eye(2, dtype=np.float32), 3, axis=0)
    category_q = np.eye(2, dtype=np.float32)
    q, db, targets = [title_q, category_q], [title_db, category_db], (q_targets, db_targets)
    sku_only = WeightSearch(grid=[0.0, 0.25, 1.0], metric="sku_mrr")
    weights, values = sku_only.evaluate(q, db, q_skus, db_skus, k=3, targets=targets)
    assert values[weights[:, 1] == 0].max() == values.max() == 1.0, "SKU MRR alone is indifferent to category"
    both = WeightSearch(grid=[0.0, 0.25, 1.0], metric=["sku_mrr", "acc"])
    weights, values = both.evaluate(q, db, q_skus, db_skus, k=3, targets=targets)
    best = both.choose(q, db, q_skus, db_skus, k=3, targets=targets)
    assert 0 < best[1] < 1 and values.max() == 1.0  # own product first and a pure top-3
    assert values[weights[:, 1] == 0].max() < 1.0
    with pytest.raises(ValueError, match="targets"):
        both.evaluate(q, db, q_skus, db_skus, k=3)


def test_no_scorable_query_gives_no_choice():
    q, db, _, db_skus = _channels()
    assert WeightSearch().choose(q, db, np.array(["X", "Y", "Z"], dtype=object), db_skus, k=2) is None


def test_pipeline_chooses_weights_on_val_queries_and_searches_with_them(tiny_catalogs):
    queries, database = tiny_catalogs
    encoders = {"tfidf": TfidfEncoder(dim=64, seed=0), "tfidf_full": TfidfEncoder(dim=None)}
    seen: list[int] = []

    class Spy(WeightSearch):
        def evaluate(self, query_blocks, *args, **kwargs):
            seen.append(len(query_blocks[0]))
            return super().evaluate(query_blocks, *args, **kwargs)

    kw = dict(channels=CHANNELS, fusion="concat", index=ExactIndex, protocol="product")
    result = RetrievalPipeline(**kw, concat_weights="auto", weight_search=Spy()).run(
        queries, database, encoders
    )
    assert seen == [int((result.queries.frame[SPLIT_COLUMN] == "val").sum())] and seen[0] > 0
    metrics = score(result)
    chosen = [metrics["fusion/weight/title:tfidf"], metrics["fusion/weight/title_cat:tfidf_full"]]
    assert sum(chosen) == pytest.approx(1.0)
    assert list(result.fusion_weights) == ["title:tfidf", "title_cat:tfidf_full"]
    fixed = RetrievalPipeline(**kw, concat_weights=chosen).run(queries, database, encoders)
    np.testing.assert_array_equal(result.ids, fixed.ids)
    assert not fixed.fusion_weights and not any(k.startswith("fusion/") for k in score(fixed))


def test_the_weight_curve_scores_each_fixed_weight_like_a_run_with_it(tiny_catalogs, tmp_path):
    from prodmatch.encoders.cache import EmbeddingCache
    from prodmatch.retrieval.evaluation import weight_curve

    queries, database = tiny_catalogs
    encoders = {"tfidf": TfidfEncoder(dim=64, seed=0), "tfidf_full": TfidfEncoder(dim=None)}
    kw = dict(channels=CHANNELS, fusion="concat", index=ExactIndex, protocol="product")
    pipeline = RetrievalPipeline(**kw, concat_weights="auto")
    rows = weight_curve(
        pipeline, queries, database, encoders, [[1.0, 0.0], [0.25, 0.75]], EmbeddingCache(tmp_path)
    )
    assert [row["weights"] for row in rows] == [[1.0, 0.0], [0.25, 0.75]]
    one = score(RetrievalPipeline(**kw, concat_weights=[0.25, 0.75]).run(queries, database, encoders))
    assert rows[1] == {"weights": [0.25, 0.75]} | one
    assert pipeline.concat_weights == "auto"  # the pipeline itself is left as it was


@pytest.mark.parametrize("depth", [3, 50])
def test_summed_channel_scores_search_like_the_fused_index(depth):
    """The weight search sums each channel's cosines instead of concatenating and searching per candidate: the
    same ranking and scores as the fused exact search, a query or card with an all-zero block (an empty title)
    included, and ties broken by the lower id as ExactIndex breaks them."""
    from prodmatch.retrieval.weights import _ChannelScores, _fused_search

    rng = np.random.default_rng(0)
    q = [rng.normal(size=(7, 5)).astype(np.float32), rng.random((7, 40)).astype(np.float32)]
    db = [rng.normal(size=(30, 5)).astype(np.float32), rng.random((30, 40)).astype(np.float32)]
    q[1][2] = 0.0  # a query without this channel
    db[1][[4, 9]] = 0.0  # cards without it
    db[0][11], db[1][11] = db[0][12], db[1][12]  # duplicate cards: a tie
    channels = _ChannelScores.of(q, db)
    for weights in WeightSearch().candidates(2):
        ids, scores = channels.search(weights, depth)
        want_ids, want_scores = _fused_search(q, db, weights, depth)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(scores, want_scores, atol=1e-6)
