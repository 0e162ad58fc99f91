"""The retrieval pipeline on the tiny synthetic catalog: fusion modes, metrics keys, matches.csv."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prodmatch.encoders.tfidf import TfidfEncoder
from prodmatch.errors import ConfigError
from prodmatch.retrieval.artifacts import MATCH_COLUMNS, matches_frame
from prodmatch.retrieval.evaluation import record, score
from prodmatch.retrieval.index import AnnoyIndex, ExactIndex
from prodmatch.retrieval.pipeline import RetrievalPipeline


def _pipeline(channels, exact: bool = False, **kw) -> RetrievalPipeline:
    index = ExactIndex if exact else (lambda: AnnoyIndex(n_trees=20, seed=0))
    return RetrievalPipeline(channels=channels, index=index, **kw)


@pytest.fixture(scope="module")
def encoders():
    return {"tfidf": TfidfEncoder(dim=64, seed=0), "tfidf_full": TfidfEncoder(dim=None)}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": [{"encoder": "tfidf", "view": "title"}], "fusion": "blend"}, "retrieval.fusion"),
        ({"channels": [{"encoder": "tfidf", "view": "title"}], "fusion": "rerank"}, "needs 2 channels"),
        ({"channels": [{"encoder": "tfidf", "view": "colour"}]}, "view 'colour'"),
        ({"channels": [{"encoder": "tfidf", "view": "title"}], "k": 0}, "retrieval.k"),
        (
            {"channels": [{"encoder": "tfidf", "view": "title"}], "recall_sample": 0},
            "retrieval.recall_sample",
        ),
        ({"channels": [], "fusion": "none"}, "retrieval.channels"),
    ],
)
def test_bad_config_is_one_clear_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RetrievalPipeline(**kwargs)


def test_unknown_encoder_names_the_known_ones(tiny_catalogs, encoders):
    queries, database = tiny_catalogs
    with pytest.raises(ConfigError, match="known: tfidf, tfidf_full"):
        _pipeline([{"encoder": "clip", "view": "title"}]).run(queries, database, encoders)


def test_single_channel_result_and_contract_metrics(tiny_catalogs, encoders):
    queries, database = tiny_catalogs
    result = _pipeline([{"encoder": "tfidf", "view": "title_cat"}]).run(queries, database, encoders)
    assert result.ids.shape == result.scores.shape == (len(queries), 10)
    assert (np.diff(result.scores, axis=1) <= 1e-6).all(), "scores must be sorted best first"
    metrics = score(result)
    targets = set(queries.targets)
    expected = {"retrieval/acc@10", "retrieval/ann_recall@10", "retrieval/sku_recall@10", "retrieval/sku_mrr"}
    expected |= {"retrieval/ann_recall_sample", "retrieval/sku_precision@10", "retrieval/sku_full_recall@10"}
    expected |= {"retrieval/sku_map@10"}
    expected |= {f"retrieval/acc@10/{t}" for t in targets}
    assert set(metrics) == expected
    # Acc@10 recomputed from the returned ids, the study's definition.
    same = database.targets[result.ids] == queries.targets[:, None]
    assert metrics["retrieval/acc@10"] == pytest.approx(same.mean())
    # title_cat carries the category: TF-IDF must beat the chance level of the tiny catalog by far.
    chance = max((database.targets == t).mean() for t in targets)
    assert metrics["retrieval/acc@10"] > chance + 0.2


def test_exact_search_gives_full_ann_recall_and_matches_annoy_closely(tiny_catalogs, encoders):
    queries, database = tiny_catalogs
    ch = [{"encoder": "tfidf", "view": "title"}]
    exact = _pipeline(ch, exact=True).run(queries, database, encoders)
    ann = _pipeline(ch).run(queries, database, encoders)
    assert score(exact)["retrieval/ann_recall@10"] == 1.0
    assert score(ann)["retrieval/ann_recall@10"] > 0.9
    assert score(ann)["retrieval/ann_recall_sample"] == len(queries)


def test_rerank_keeps_first_stage_candidates_ordered_by_second_channel(tiny_catalogs, encoders):
    queries, database = tiny_catalogs
    pipe = _pipeline(
        [{"encoder": "tfidf", "view": "title"}, {"encoder": "tfidf_full", "view": "text_all"}],
        fusion="rerank",
        rerank_k=20,
        exact=True,
    )
    result = pipe.run(queries, database, encoders)
    first = _pipeline([{"encoder": "tfidf", "view": "title"}], k=20, exact=True).run(
        queries, database, encoders
    )
    for q in range(len(queries)):
        assert set(result.ids[q]) <= set(first.ids[q])
    second_q = encoders["tfidf_full"].encode(queries.texts("text_all")).vectors
    second_db = encoders["tfidf_full"].encode(database.texts("text_all")).vectors
    expected = np.einsum("qd,qkd->qk", second_q, second_db[result.ids])
    np.testing.assert_allclose(result.scores, expected, atol=1e-5)
    assert "re-ranked by text_all" in result.description


def test_concat_of_one_view_twice_equals_single_channel(tiny_catalogs, encoders):
    queries, database = tiny_catalogs
    single = _pipeline([{"encoder": "tfidf", "view": "title"}], exact=True).run(queries, database, encoders)
    double = _pipeline(
        [{"encoder": "tfidf", "view": "title"}, {"encoder": "tfidf", "view": "title"}],
        fusion="concat",
        exact=True,
    ).run(queries, database, encoders)
    np.testing.assert_allclose(double.scores, single.scores, atol=1e-5)


def test_artifacts_follow_the_contract(tiny_catalogs, encoders, tmp_path):
    queries, database = tiny_catalogs
    result = _pipeline([{"encoder": "tfidf", "view": "title"}]).run(queries, database, encoders)
    metrics = score(result)
    record(result, metrics, tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == pytest.approx(metrics)
    matches = pd.read_csv(tmp_path / "matches.csv")
    keys = ["query_price", "query_dealer", "query_sku", "db_price", "db_dealer", "db_cat_1", "db_cat_2"]
    keys += ["db_cat_3", "db_img_ref", "db_sku"]  # the key columns follow the contract's: one export
    assert list(matches.columns) == [*MATCH_COLUMNS, *keys]
    assert len(matches) == len(queries) * 10
    assert matches.groupby("query_idx")["rank"].apply(list).map(lambda r: r == list(range(1, 11))).all()
    # Indices are row positions in the CSVs: the titles must be those rows' titles.
    q_csv = pd.read_csv(tiny_catalogs[0].image_root / "company_data.csv")
    d_csv = pd.read_csv(tiny_catalogs[0].image_root / "comparable_data.csv")
    assert (
        q_csv["title"].to_numpy(dtype=object)[matches["query_idx"]]
        == matches["query_title"].to_numpy(dtype=object)
    ).all()
    assert (
        d_csv["title"].to_numpy(dtype=object)[matches["db_idx"]] == matches["db_title"].to_numpy(dtype=object)
    ).all()
    assert (
        d_csv["target"].to_numpy(dtype=object)[matches["db_idx"]]
        == matches["db_target"].to_numpy(dtype=object)
    ).all()


def test_a_k_larger_than_the_database_is_one_error_and_padding_never_becomes_a_match(tiny_catalogs, encoders):
    queries, database = tiny_catalogs
    small_db = database.subset(np.arange(6))
    channels = [{"encoder": "tfidf_full", "view": "title"}]
    with pytest.raises(
        ConfigError, match=r"retrieval.k=10 is more than the 6 database cards.*retrieval.k <= 6"
    ):
        _pipeline(channels, exact=True).run(queries, small_db, encoders)
    result = _pipeline(channels, exact=True, k=6).run(queries, small_db, encoders)
    result.ids[:, -1] = -1  # what an ANN index gives when it finds fewer than k
    frame = matches_frame(result)
    assert len(frame) == len(queries) * 5
    assert frame["db_idx"].isin(small_db.row_ids).all()


def test_query_targets_missing_from_the_database_are_counted_and_logged(tiny_catalogs, encoders, caplog):
    from prodmatch.retrieval.pipeline import warn_unmatched_targets

    queries, database = tiny_catalogs
    target = queries.targets[0]
    kept = database.subset(np.flatnonzero(database.targets != target))
    with caplog.at_level("WARNING", logger="prodmatch.retrieval"):
        unmatched = warn_unmatched_targets(queries, kept)
    assert unmatched == {target: int((queries.targets == target).sum())}
    assert target in caplog.text and "count as misses" in caplog.text
    assert warn_unmatched_targets(queries, database) == {}
