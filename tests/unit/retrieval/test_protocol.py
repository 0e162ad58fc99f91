"""The product-level protocol: split-aware scoring, the validation threshold, matches.csv, the shared split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prodmatch.data.catalog import Catalog, load_catalog
from prodmatch.data.splits import ProductSplit, split_catalogs
from prodmatch.encoders.tfidf import TfidfEncoder
from prodmatch.errors import ConfigError
from prodmatch.layout import BEFORE_FIT
from prodmatch.retrieval.artifacts import MATCH_COLUMNS, MATCHES_FILE, matches_frame
from prodmatch.retrieval.evaluation import record, score
from prodmatch.retrieval.index import AnnoyIndex, ExactIndex
from prodmatch.retrieval.metrics import choose_threshold, metric_dict
from prodmatch.retrieval.pipeline import RetrievalPipeline
from prodmatch.retrieval.protocol import SPLIT_COLUMN
from prodmatch.retrieval.result import RetrievalResult

TITLE = [{"encoder": "tfidf", "view": "title"}]


@pytest.fixture(scope="module")
def encoders():
    return {"tfidf": TfidfEncoder(dim=64, seed=0), "tfidf_full": TfidfEncoder(dim=None)}


def _catalog(root: Path, name: str, skus: list[str] | None, targets: list[str]) -> Catalog:
    """A text-only catalog CSV of the given targets and SKUs (no sku column for None), through the catalog layer."""
    rows = pd.DataFrame(
        {
            "title": [f"{name} card {i}" for i in range(len(targets))], "price": 100.0, "cat_1": "c",
            "cat_2": "", "cat_3": "", "caracteristics": "", "img_ref": "card.png", "target": targets,
            "dealer": "shop",
        }
    )  # fmt: skip
    if skus is not None:
        rows["sku"] = skus
    path = root / f"{name}.csv"
    rows.to_csv(path, index=False)
    return load_catalog(path, root, require_images=False, check_images="none")


# Database: A A B C C. Queries: q0 (A) and q1 (C) of test products, q2 (B) of a val product, q3 (C) of a train
# product, q4 without SKU. k = 2 over a ranking 3 deep.
DB = (["A", "A", "B", "C", "C"], ["x", "x", "y", "z", "z"])
QUERIES = (["A", "C", "B", "C", ""], ["x", "z", "y", "z", "x"])
SPLIT = ["test", "test", "val", "train", "none"]
IDS = np.array([[0, 2, 1], [1, 3, 4], [2, 0, 1], [0, 1, 3], [0, 1, 2]])
SCORES = np.array(
    [[0.9, 0.6, 0.5], [0.8, 0.7, 0.4], [0.95, 0.3, 0.2], [0.5, 0.45, 0.4], [0.9, 0.8, 0.7]], dtype=np.float32
)


@pytest.fixture
def hand_result(tmp_path) -> RetrievalResult:
    queries = _catalog(tmp_path, "queries", *QUERIES).with_column(SPLIT_COLUMN, SPLIT)
    return RetrievalResult(queries, _catalog(tmp_path, "db", *DB), IDS, SCORES, k=2, description="hand")


def test_product_scoring_keys_and_values_by_hand(hand_result):
    m = score(hand_result)
    # Test products (q0, q1): hits in the top-2 are [1, 0] and [0, 1]; both products have 2 listings.
    assert m["retrieval/acc@2"] == pytest.approx(0.5)
    assert m["retrieval/sku_recall@2"] == 1.0
    assert m["retrieval/sku_mrr"] == pytest.approx(0.75)
    assert m["retrieval/sku_precision@2"] == pytest.approx(0.5)
    assert m["retrieval/sku_full_recall@2"] == pytest.approx(0.5)
    assert m["retrieval/sku_map@2"] == pytest.approx((0.5 + 0.25) / 2)
    # Seen products (q2 val: hit at rank 1 of its single listing; q3 train: no hit); q4 counts nowhere.
    assert m["seen/retrieval/acc@2"] == pytest.approx(0.25)
    assert m["seen/retrieval/sku_recall@2"] == pytest.approx(0.5)
    assert m["seen/retrieval/sku_mrr"] == pytest.approx(0.5)
    assert m["seen/retrieval/sku_full_recall@2"] == pytest.approx(0.5)
    assert m["seen/retrieval/sku_map@2"] == pytest.approx(0.5)
    # Threshold on q2 alone: F1 = 1 once only its first card (0.95) is predicted: the lowest such is 0.31.
    assert m["match/threshold"] == m["seen/match/threshold"] == pytest.approx(0.31)
    # At 0.31 every candidate of q0 and q1 is predicted: 2 of 3 right, both listings found.
    assert m["match/precision"] == pytest.approx(2 / 3)
    assert m["match/recall"] == 1.0
    assert m["match/f1"] == pytest.approx(0.8)
    # q2: {0.95} exactly right (F1 1); q3: 3 predicted, 1 right of 2 listings (P 1/3, R 1/2, F1 0.4).
    assert m["seen/match/precision"] == pytest.approx(2 / 3)
    assert m["seen/match/recall"] == pytest.approx(0.75)
    assert m["seen/match/f1"] == pytest.approx(0.7)
    assert [m[f"split/{g}"] for g in ("train", "val", "test", "none")] == [1.0, 1.0, 2.0, 1.0]


def test_threshold_is_chosen_on_the_val_queries_only(hand_result):
    test = np.array(SPLIT) == "test"
    on_test = choose_threshold(SCORES[test], IDS[test], np.array(QUERIES[0])[test], DB[0])
    assert on_test == 0.0 != score(hand_result)["match/threshold"]
    # Other scores for the test queries leave the threshold as it is; other scores for the val query move it.
    moved_test = SCORES.copy()
    moved_test[test] = [[0.99, 0.1, 0.98], [0.2, 0.97, 0.96]]
    moved_val = SCORES.copy()
    moved_val[2] = [0.95, 0.895, 0.2]
    q, db = hand_result.queries, hand_result.database
    assert score(RetrievalResult(q, db, IDS, moved_test, 2, "t"))["match/threshold"] == pytest.approx(0.31)
    assert score(RetrievalResult(q, db, IDS, moved_val, 2, "v"))["match/threshold"] == pytest.approx(0.9)


def test_before_fit_prefix_composes(hand_result):
    plain, before = score(hand_result), score(hand_result, stage=BEFORE_FIT)
    assert before == {f"before_fit/{key}": value for key, value in plain.items()}
    assert {"before_fit/seen/retrieval/sku_mrr", "before_fit/match/f1", "before_fit/seen/match/f1"} <= set(
        before
    )


def test_an_empty_seen_group_has_its_keys_without_values_and_an_empty_test_group_is_an_error(hand_result):
    split = ["test", "test", "test", "test", "none"]
    queries = hand_result.queries.with_column(SPLIT_COLUMN, split)
    m = score(RetrievalResult(queries, hand_result.database, IDS, SCORES, 2, "no seen products"))
    for key in ("seen/retrieval/acc@2", "seen/retrieval/sku_mrr", "seen/retrieval/sku_map@2"):
        assert np.isnan(m[key])
    assert np.isfinite(m["retrieval/acc@2"]) and np.isfinite(m["retrieval/sku_mrr"])
    untested = hand_result.queries.with_column(SPLIT_COLUMN, ["val", "val", "val", "train", "none"])
    with pytest.raises(ConfigError, match="nothing to score"):
        score(RetrievalResult(untested, hand_result.database, IDS, SCORES, 2, "no test products"))


def test_category_protocol_keys_are_unchanged(tiny_catalogs, encoders, tmp_path):
    queries, database = tiny_catalogs
    result = RetrievalPipeline(TITLE, index=ExactIndex).run(queries, database, encoders)
    assert result.ids.shape == (len(queries), 10)
    assert SPLIT_COLUMN not in result.queries.frame.columns and not result.fusion_weights
    m = score(result)
    expected = metric_dict(
        queries.targets, database.targets, result.ids, k=10, query_skus=queries.skus, db_skus=database.skus
    )
    expected |= {"retrieval/ann_recall@10": 1.0, "retrieval/ann_recall_sample": float(len(queries))}
    assert m == pytest.approx(expected)
    assert not any(key.startswith(("seen/", "match/", "split/", "fusion/")) for key in m)
    assert tuple(matches_frame(result).columns)[: len(MATCH_COLUMNS)] == MATCH_COLUMNS
    assert "query_split" not in matches_frame(result).columns


def test_product_pipeline_splits_queries_and_keeps_match_depth(tiny_catalogs, encoders):
    queries, database = tiny_catalogs
    # A fixed search_k (as configured): ANNOY then inspects as many nodes whatever the depth asked for.
    annoy = lambda: AnnoyIndex(n_trees=20, search_k=2000, seed=0)  # noqa: E731
    result = RetrievalPipeline(TITLE, index=annoy, protocol="product", match_depth=30, seed=3).run(
        queries, database, encoders
    )
    assert result.ids.shape == result.scores.shape == (len(queries), 30)
    assert (result.ids >= 0).all(), "the ANN path fills a ranking deeper than k"
    expected, _ = split_catalogs(queries.skus, database.skus, (0.6, 0.2, 0.2), 3)
    assert result.queries.frame[SPLIT_COLUMN].tolist() == expected.tolist()
    # The top-k and the ranking keys do not depend on how deep the ranking is kept.
    shallow = RetrievalPipeline(TITLE, index=annoy, protocol="product", match_depth=5, seed=3)
    shallow_result = shallow.run(queries, database, encoders)
    np.testing.assert_array_equal(shallow_result.top_ids, result.top_ids)
    keys = [k for k in score(result) if k.startswith(("retrieval/", "seen/retrieval/"))]
    assert score(shallow_result)["retrieval/sku_mrr"] == score(result)["retrieval/sku_mrr"] and keys


def test_rerank_keeps_match_depth_padded_beyond_its_candidates(tiny_catalogs, encoders):
    queries, database = tiny_catalogs
    channels = [*TITLE, {"encoder": "tfidf_full", "view": "title_cat"}]
    kw = dict(channels=channels, fusion="rerank", rerank_k=20, index=ExactIndex)
    category = RetrievalPipeline(**kw).run(queries, database, encoders)
    product = RetrievalPipeline(**kw, protocol="product", match_depth=30).run(queries, database, encoders)
    assert product.ids.shape[1] == 30 and (product.ids[:, 20:] == -1).all()
    np.testing.assert_array_equal(product.top_ids, category.top_ids)


def test_matches_csv_query_split_recomputes_the_headline_figures(tiny_catalogs, encoders, tmp_path):
    queries, database = tiny_catalogs
    result = RetrievalPipeline(TITLE, index=ExactIndex, protocol="product").run(queries, database, encoders)
    metrics = score(result)
    record(result, metrics, tmp_path)
    matches = pd.read_csv(tmp_path / MATCHES_FILE)
    assert set(matches["query_split"]) <= {"train", "val", "test", "none"}
    read = dict(dtype=str, keep_default_na=False)
    q_sku = pd.read_csv(queries.csv_path, **read)["sku"].str.strip().to_numpy()
    db_sku = pd.read_csv(database.csv_path, **read)["sku"].str.strip().to_numpy()
    test = matches[(matches["query_split"] == "test") & (matches["rank"] <= 10)]
    hit = q_sku[test["query_idx"]] == db_sku[test["db_idx"]]
    per_query = pd.Series(hit).groupby(test["query_idx"].to_numpy())
    assert per_query.any().mean() == pytest.approx(metrics["retrieval/sku_recall@10"], abs=1e-12)
    first = test["rank"].to_numpy()[hit]
    mrr = pd.Series(1.0 / first).groupby(test["query_idx"].to_numpy()[hit]).max()
    assert mrr.sum() / per_query.ngroups == pytest.approx(metrics["retrieval/sku_mrr"], abs=1e-12)
    assert per_query.ngroups == metrics["split/test"] > 0
    # The saved result carries the split: a loaded result scores the same.
    assert score(RetrievalResult.load(tmp_path)) == pytest.approx(metrics, nan_ok=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "sku"}, "retrieval.protocol"),
        ({"protocol": "product", "split_fractions": [0.5, 0.5, 0.5]}, r"retrieval\.split_fractions=\[0\.5"),
        ({"protocol": "product", "match_depth": 0}, "retrieval.match_depth"),
        ({"concat_weights": "auto", "fusion": "concat"}, "retrieval.protocol=product"),
        ({"concat_weights": "best", "fusion": "concat", "protocol": "product"}, "auto or null"),
    ],
)
def test_bad_protocol_config_is_one_clear_error(kwargs, message):
    channels = [*TITLE, {"encoder": "tfidf_full", "view": "title_cat"}]
    with pytest.raises(ConfigError, match=message):
        RetrievalPipeline(channels=channels if kwargs.get("fusion") else TITLE, **kwargs)


@pytest.mark.parametrize(
    ("query_skus", "fractions", "message"),
    [
        (["", "", "", "", ""], (0.6, 0.2, 0.2), "no query card has a SKU that a database card has"),
        (
            QUERIES[0],
            (1.0, 0.0, 0.0),
            r"retrieval.split_fractions=\[1.0, 0.0, 0.0\] puts 0 of 3 database products",
        ),
    ],
    ids=["every query SKU empty", "no test share"],
)
def test_nothing_to_score_is_one_error_naming_the_cause_never_nan(
    tmp_path, encoders, query_skus, fractions, message
):
    queries = _catalog(tmp_path, "queries", query_skus, QUERIES[1])
    pipeline = RetrievalPipeline(TITLE, protocol="product", split_fractions=fractions, k=2)
    with pytest.raises(ConfigError, match=f"nothing to score: .*{message}") as info:
        pipeline.run(queries, _catalog(tmp_path, "db", *DB), encoders)
    assert "\n" not in str(info.value)


def test_product_protocol_needs_skus(tmp_path, encoders):
    no_sku = _catalog(tmp_path, "queries", None, QUERIES[1])
    with pytest.raises(ConfigError, match="needs a sku column"):
        RetrievalPipeline(TITLE, protocol="product").run(no_sku, _catalog(tmp_path, "db", *DB), encoders)


def test_training_and_scoring_share_one_split(compose_cfg, tiny_catalogs, encoders):
    from prodmatch.tasks import instantiators as inst
    from prodmatch.tasks.train import product_split, settle_modality

    queries, database = tiny_catalogs
    cfg = compose_cfg(
        "train", ["experiment=product_arcface", "seed=5", "retrieval.split_fractions=[0.5,0.3,0.2]"]
    )
    assert cfg.retrieval.protocol == "product"
    settle_modality(cfg)
    pipeline = inst.build(cfg.retrieval)
    split = product_split(cfg, pipeline, database, mined=False)
    assert split == ProductSplit.draw(database.skus, (0.5, 0.3, 0.2), 5)
    q_split, db_split = split_catalogs(queries.skus, database.skus, (0.5, 0.3, 0.2), 5)
    datamodule = inst.build(cfg.datamodule, database=database, split=split)
    assert (db_split[datamodule.train_indices] == "train").all()
    assert (db_split[datamodule.val_indices] == "val").all()
    assert set(datamodule.train_indices) == set(np.flatnonzero(db_split == "train"))
    # scoring groups the query cards by the object it is given, whatever its own fractions and seed
    result = RetrievalPipeline(TITLE, index=ExactIndex, protocol="product").run(
        queries, database, encoders, split=split
    )
    np.testing.assert_array_equal(result.queries.frame[SPLIT_COLUMN].to_numpy(), q_split)


def test_a_category_run_that_trains_on_products_draws_the_split_too(compose_cfg, tiny_catalogs):
    from prodmatch.tasks import instantiators as inst
    from prodmatch.tasks.train import product_split

    _, database = tiny_catalogs
    cfg = compose_cfg(
        "train", ["model=resnet_arcface", "datamodule.label=sku", "datamodule.sampler=m_per_class"]
    )
    pipeline = inst.build(cfg.retrieval)
    assert pipeline.protocol == "category"
    assert product_split(cfg, pipeline, database, mined=False) == pipeline.product_split(database)
    assert (
        product_split(cfg, pipeline, database, mined=True) is None
    )  # mined labels train every labelled card
