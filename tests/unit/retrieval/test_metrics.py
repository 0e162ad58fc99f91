"""Retrieval metrics: hand-computed cases, torchmetrics cross-checks, contract key names."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torchmetrics.retrieval import (
    RetrievalHitRate,
    RetrievalMRR,
    RetrievalPrecision,
    RetrievalRecall,
)

from prodmatch.retrieval.metrics import (
    acc_at_k,
    ann_recall,
    choose_threshold,
    match_metrics,
    metric_dict,
    sku_metrics,
    threshold_curve,
)

QUERY_TARGETS = np.array(["a", "a", "b"], dtype=object)
DB_TARGETS = np.array(["a", "b", "b", "a", "c"], dtype=object)
IDS = np.array([[0, 1, 3], [2, -1, 4], [1, 2, 0]])
# q0 (a): a b a -> 2/3;  q1 (a): b pad c -> 0;  q2 (b): b b a -> 2/3


def test_acc_at_k_hand_case():
    overall, per_target = acc_at_k(QUERY_TARGETS, DB_TARGETS, IDS, k=3)
    assert overall == pytest.approx(4 / 9)
    assert per_target == pytest.approx({"a": 1 / 3, "b": 2 / 3})
    assert list(per_target) == ["a", "b"]  # only targets present in the queries, sorted


def test_acc_at_k_uses_first_k_columns_and_accepts_pandas_strings():
    overall, per_target = acc_at_k(pd.array(["a", "a", "b"]), pd.Series(DB_TARGETS, dtype="string"), IDS, k=1)
    assert overall == pytest.approx(2 / 3) and per_target == pytest.approx({"a": 0.5, "b": 1.0})


def test_acc_at_k_validates_inputs():
    with pytest.raises(ValueError, match="columns but k=4"):
        acc_at_k(QUERY_TARGETS, DB_TARGETS, IDS, k=4)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        acc_at_k(QUERY_TARGETS, DB_TARGETS, IDS + 2, k=3)
    with pytest.raises(ValueError, match="empty values"):
        acc_at_k(np.array(["a", "", "b"], dtype=object), DB_TARGETS, IDS, k=3)


def tm(metric, scores_by_rank: np.ndarray, relevant: np.ndarray) -> float:
    """Run a torchmetrics retrieval metric over flattened [Q, k] lists, ranked by ``scores_by_rank``.

    The scores must be positive: recent torchmetrics counts items with preds <= 0 as not retrieved.
    """
    q, k = relevant.shape
    preds = torch.as_tensor(scores_by_rank, dtype=torch.float32).reshape(-1)
    indexes = torch.arange(q).repeat_interleave(k)
    return float(metric(preds, torch.as_tensor(relevant.reshape(-1)), indexes=indexes))


def random_case(seed: int, q: int = 40, n: int = 120, k: int = 10, pad: bool = True):
    rng = np.random.default_rng(seed)
    labels = np.array(["velo", "row", "step", "ellip"], dtype=object)
    qt, dt = rng.choice(labels, q), rng.choice(labels, n)
    ids = np.stack([rng.permutation(n)[:k] for _ in range(q)])
    if pad:
        ids[rng.random((q, k)) < 0.1] = -1
    relevant = np.where(ids >= 0, dt[ids] == qt[:, None], False)
    ranks = np.tile(np.arange(k, 0, -1, dtype=np.float32), (q, 1))  # k .. 1: keeps our order
    return qt, dt, ids, relevant, ranks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_acc_at_k_equals_torchmetrics_precision(seed):
    qt, dt, ids, relevant, ranks = random_case(seed)
    overall, per_target = acc_at_k(qt, dt, ids, k=10)
    assert overall == pytest.approx(tm(RetrievalPrecision(top_k=10), ranks, relevant), abs=1e-6)
    for target, value in per_target.items():
        rows = qt == target
        assert value == pytest.approx(tm(RetrievalPrecision(top_k=10), ranks[rows], relevant[rows]), abs=1e-6)
    assert set(per_target) == set(qt)


SKU_Q = ["A1", "", None, "Z9", " B2 "]
SKU_DB = ["B2", "A1", "x", None, "A1"]
SKU_IDS = np.array([[2, 4, 1], [1, 4, 0], [3, 0, 1], [0, 1, 2], [1, 3, -1]])
# eligible: q0 (A1: first hit at rank 2 -> 1/2) and q4 ("B2" after stripping: no hit -> 0)
# q1 / q2 have no SKU, q3's Z9 is not in the database


def test_sku_metrics_hand_case():
    out = sku_metrics(SKU_Q, SKU_DB, SKU_IDS, k=3)
    # q0 (A1, 2 listings: rows 1 and 4) hits at ranks 2 and 3: precision 2/3, full recall 1,
    # AP (1/2 + 2/3) / 2; q4 scores 0 everywhere
    assert out == {
        "sku_recall@3": 0.5,
        "sku_mrr": 0.25,
        "sku_precision@3": pytest.approx(1 / 3),
        "sku_full_recall@3": 0.5,
        "sku_map@3": pytest.approx((1 / 2 + 2 / 3) / 4),
        "sku_queries": 2,
        "sku_missing": 2,
        "sku_not_in_db": 1,
    }
    top1 = sku_metrics(SKU_Q, SKU_DB, SKU_IDS, k=1)
    assert top1["sku_recall@1"] == 0.0 and top1["sku_mrr"] == 0.0


def test_sku_metrics_missing_values_never_match_each_other():
    out = sku_metrics([np.nan, "k"], pd.array([pd.NA, "k"], dtype="string"), np.array([[0, 1], [0, 1]]), k=2)
    assert out["sku_queries"] == 1 and out["sku_missing"] == 1
    assert out["sku_recall@2"] == 1.0 and out["sku_mrr"] == 0.5


def test_sku_metrics_without_eligible_queries_are_nan():
    out = sku_metrics(["", "q"], ["a", "b"], np.array([[0, 1], [1, 0]]), k=2)
    assert math.isnan(out["sku_recall@2"]) and math.isnan(out["sku_mrr"]) and out["sku_queries"] == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_sku_metrics_equal_torchmetrics(seed):
    rng = np.random.default_rng(seed)
    n, q, k = 200, 50, 10
    db_skus = rng.choice([f"S{i}" for i in range(40)] + [""], n).astype(object)
    query_skus = rng.choice([f"S{i}" for i in range(45)] + [""], q).astype(object)  # S40..S44 not in db
    ids = np.stack([rng.permutation(n)[:k] for _ in range(q)])
    out = sku_metrics(query_skus, db_skus, ids, k=k)
    eligible = (query_skus != "") & np.isin(query_skus, db_skus[db_skus != ""])
    relevant = (db_skus[ids] == query_skus[:, None])[eligible]
    ranks = np.tile(np.arange(k, 0, -1, dtype=np.float32), (relevant.shape[0], 1))
    assert out["sku_queries"] == eligible.sum() > 0
    assert out[f"sku_recall@{k}"] == pytest.approx(tm(RetrievalHitRate(top_k=k), ranks, relevant), abs=1e-6)
    assert out["sku_mrr"] == pytest.approx(tm(RetrievalMRR(top_k=k), ranks, relevant), abs=1e-6)


def test_ann_recall_hand_cases():
    ann = np.array([[1, 2, 3], [4, 5, 6]])
    exact = np.array([[3, 2, 9], [7, 8, 4]])
    assert ann_recall(ann, exact, k=3) == pytest.approx(0.5)  # 2/3 and 1/3
    assert ann_recall(ann, exact, k=1) == pytest.approx(0.0)
    assert ann_recall(np.array([[1, 0, -1]]), np.array([[0, 1, -1]]), k=3) == 1.0  # db of 2: pads ignored
    with pytest.raises(ValueError, match="fewer than k"):
        ann_recall(ann, exact, k=4)


def test_metric_dict_contract_keys():
    out = metric_dict(
        QUERY_TARGETS,
        DB_TARGETS,
        np.hstack([IDS, IDS[:, :1].repeat(7, axis=1)]),
        query_skus=["a1", "", "b2"],
        db_skus=["a1", "b2", "", "", "c"],
        ann_ids=np.zeros((3, 10), dtype=np.int64),
        exact_ids=np.zeros((3, 10), dtype=np.int64),
    )
    assert set(out) == {
        "retrieval/acc@10",
        "retrieval/acc@10/a",
        "retrieval/acc@10/b",
        "retrieval/ann_recall@10",
        "retrieval/sku_recall@10",
        "retrieval/sku_mrr",
        "retrieval/sku_precision@10",
        "retrieval/sku_full_recall@10",
        "retrieval/sku_map@10",
    }
    assert all(isinstance(v, float) for v in out.values())
    assert out["retrieval/ann_recall@10"] == 1.0


def test_metric_dict_optional_parts_and_prefix():
    out = metric_dict(QUERY_TARGETS, DB_TARGETS, IDS, k=3, prefix="before_fit/retrieval/")
    assert out == pytest.approx(
        {
            "before_fit/retrieval/acc@3": 4 / 9,
            "before_fit/retrieval/acc@3/a": 1 / 3,
            "before_fit/retrieval/acc@3/b": 2 / 3,
        }
    )
    only_query_skus = metric_dict(QUERY_TARGETS, DB_TARGETS, IDS, k=3, query_skus=["a", "b", "c"])
    assert not any("sku" in key for key in only_query_skus)
    with pytest.raises(ValueError, match="both ann_ids and exact_ids"):
        metric_dict(QUERY_TARGETS, DB_TARGETS, IDS, k=3, ann_ids=IDS)


# --------------------------------------------------------------------------- product-level measures


def sku_case(seed: int, q: int = 50, n: int = 200, k: int = 10, pad: bool = True):
    """Random SKUs with empty ones and query SKUs absent from the database; ids with padding."""
    rng = np.random.default_rng(seed)
    db_skus = rng.choice([f"S{i}" for i in range(30)] + [""], n).astype(object)
    query_skus = rng.choice([f"S{i}" for i in range(34)] + [""], q).astype(object)  # S30..S33 not in db
    ids = np.stack([rng.permutation(n)[:k] for _ in range(q)])
    if pad:
        ids[rng.random((q, k)) < 0.05] = -1
    eligible = (query_skus != "") & np.isin(query_skus, db_skus[db_skus != ""])
    return query_skus, db_skus, ids, eligible


def brute_force(query_skus, db_skus, ids, eligible, k):
    """Per-query loop over the eligible queries: (precision, full recall, AP with min(k, listings))."""
    rows = []
    for qi in np.flatnonzero(eligible):
        listings = int((db_skus == query_skus[qi]).sum())
        rel = [j >= 0 and db_skus[j] == query_skus[qi] for j in ids[qi, :k]]
        ap = sum(sum(rel[: i + 1]) / (i + 1) for i in range(k) if rel[i]) / min(k, listings)
        rows.append((sum(rel) / k, sum(rel) / listings, ap))
    return np.mean(rows, axis=0)


@pytest.mark.parametrize(("seed", "k"), [(0, 10), (1, 10), (2, 3)])
def test_product_measures_equal_brute_force_and_torchmetrics(seed, k):
    query_skus, db_skus, ids, eligible = sku_case(seed)
    out = sku_metrics(query_skus, db_skus, ids, k=k)
    precision, full_recall, ap = brute_force(query_skus, db_skus, ids, eligible, k)
    assert out[f"sku_precision@{k}"] == pytest.approx(precision)
    assert out[f"sku_full_recall@{k}"] == pytest.approx(full_recall)
    assert out[f"sku_map@{k}"] == pytest.approx(ap)

    # torchmetrics over the retrieved lists (precision) and over the whole database (full recall):
    # retrieved rows score by rank, every other database row scores below them (so no padding here).
    query_skus, db_skus, ids, eligible = sku_case(seed, pad=False)
    out = sku_metrics(query_skus, db_skus, ids, k=k)
    qs, ids_e = query_skus[eligible], ids[eligible, :k]
    relevant = np.where(ids_e >= 0, db_skus[ids_e] == qs[:, None], False)
    ranks = np.tile(np.arange(k, 0, -1, dtype=np.float32), (len(qs), 1))
    assert out[f"sku_precision@{k}"] == pytest.approx(tm(RetrievalPrecision(top_k=k), ranks, relevant))
    full = np.full((len(qs), len(db_skus)), 0.5, dtype=np.float32)
    rows = np.repeat(np.arange(len(qs)), k)
    full[rows, ids_e.ravel()] = ranks.ravel()
    full_relevant = db_skus[None, :] == qs[:, None]
    assert out[f"sku_full_recall@{k}"] == pytest.approx(
        tm(RetrievalRecall(top_k=k), full, full_relevant), abs=1e-6
    )


def test_sku_map_is_one_only_for_a_perfect_prefix():
    db = ["p", "p", "x", "p", "y"]
    perfect = sku_metrics(["p"], db, np.array([[0, 1, 3, 2]]), k=4)
    assert perfect["sku_map@4"] == 1.0 and perfect["sku_full_recall@4"] == 1.0
    late = sku_metrics(["p"], db, np.array([[2, 0, 1, 3]]), k=4)
    assert late["sku_map@4"] == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)
    # more listings than k: AP normalised by k, full recall by the listings
    short = sku_metrics(["p"], db, np.array([[0, 1]]), k=2)
    assert short["sku_map@2"] == 1.0 and short["sku_full_recall@2"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("k", [5, 20])
def test_metric_dict_reports_product_keys_for_any_k(k):
    query_skus, db_skus, ids, _ = sku_case(3, k=k)
    targets_q, targets_db = np.full(len(query_skus), "t"), np.full(len(db_skus), "t")
    out = metric_dict(targets_q, targets_db, ids, k=k, query_skus=query_skus, db_skus=db_skus)
    names = ("sku_recall@{k}", "sku_mrr", "sku_precision@{k}", "sku_full_recall@{k}", "sku_map@{k}")
    direct = sku_metrics(query_skus, db_skus, ids, k=k)
    for name in names:
        assert out[f"retrieval/{name.format(k=k)}"] == direct[name.format(k=k)]


# --------------------------------------------------------------------------- thresholded matching

MATCH_Q = ["A", "B", "Z", ""]
MATCH_DB = ["A", "A", "B", "C", "A"]
MATCH_IDS = np.array([[0, 3, 1], [2, 0, -1], [0, 1, 2], [0, 1, 2]])
MATCH_SCORES = np.array([[0.9, 0.8, 0.4], [0.95, 0.3, 0.99], [0.9, 0.9, 0.9], [0.9, 0.9, 0.9]])
# eligible: q0 (A: 3 listings, rows 0, 1, 4) and q1 (B: row 2); q2's Z is not in the database, q3 has no SKU


def test_match_metrics_hand_case():
    out = match_metrics(MATCH_SCORES, MATCH_IDS, MATCH_Q, MATCH_DB, threshold=0.5)
    # q0 predicts {0, 3}: tp 1 -> P 1/2, R 1/3, F1 2/5; q1 predicts {2} (padding never counts): P 1, R 1, F1 1
    assert out == pytest.approx(
        {"match/precision": 0.75, "match/recall": 2 / 3, "match/f1": 0.7, "match/threshold": 0.5}
    )
    empty = match_metrics(MATCH_SCORES, MATCH_IDS, MATCH_Q, MATCH_DB, threshold=0.999)
    assert empty["match/precision"] == 0.0 and empty["match/f1"] == 0.0  # nothing predicted: a miss
    low = match_metrics(MATCH_SCORES, MATCH_IDS, MATCH_Q, MATCH_DB, threshold=0.0, prefix="val/match/")
    # q0 predicts {0, 3, 1}: tp 2 -> P 2/3, R 2/3, F1 2/3; q1 predicts {2, 0}: P 1/2, R 1, F1 2/3
    assert low["val/match/f1"] == pytest.approx(2 / 3)
    assert low["val/match/precision"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def brute_force_match(scores, ids, query_skus, db_skus, t):
    """Per-query sets, as the Shopee metric is usually written."""
    f1s = []
    for qi, sku in enumerate(query_skus):
        truth = {j for j, s in enumerate(db_skus) if s and s == sku}
        if not sku or not truth:
            continue
        pred = {int(j) for j, s in zip(ids[qi], scores[qi], strict=True) if j >= 0 and s >= t}
        f1s.append(2 * len(pred & truth) / (len(pred) + len(truth)))
    return np.mean(f1s)


def test_threshold_curve_equals_set_computation_and_choice_maximises_f1():
    query_skus, db_skus, ids, _ = sku_case(5, q=60, n=150, k=30)
    rng = np.random.default_rng(5)
    same = np.where(ids >= 0, db_skus[ids] == query_skus[:, None], False)
    scores = np.clip(rng.normal(0.45, 0.15, ids.shape) + 0.3 * same, -1, 1)  # same-SKU cards score higher
    grid = np.linspace(0.0, 1.0, 21)
    curve = threshold_curve(scores, ids, query_skus, db_skus, grid)
    expected = [brute_force_match(scores, ids, query_skus, db_skus, t) for t in grid]
    np.testing.assert_allclose(curve["f1"], expected)
    best = choose_threshold(scores, ids, query_skus, db_skus, grid)
    assert best == grid[int(np.argmax(expected))]
    assert 0.0 < best < 1.0  # the signal puts the optimum strictly inside the grid
    at_best = match_metrics(scores, ids, query_skus, db_skus, best)
    assert at_best["match/f1"] == pytest.approx(max(expected))


def test_threshold_inputs_are_checked():
    with pytest.raises(ValueError, match="same"):
        threshold_curve(MATCH_SCORES[:, :2], MATCH_IDS, MATCH_Q, MATCH_DB, [0.5])
    with pytest.raises(ValueError, match="no query"):
        choose_threshold(MATCH_SCORES, MATCH_IDS, ["Z", "", "Y", "X"], MATCH_DB)
    nan = match_metrics(MATCH_SCORES, MATCH_IDS, ["Z", "", "Y", "X"], MATCH_DB, 0.5)
    assert math.isnan(nan["match/f1"])
