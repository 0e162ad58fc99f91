"""Retrieval metrics: hand-computed cases, torchmetrics cross-checks, contract key names."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torchmetrics.retrieval import RetrievalHitRate, RetrievalMRR, RetrievalPrecision

from prodmatch.retrieval.metrics import acc_at_k, ann_recall, metric_dict, sku_metrics

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
    assert out == {
        "sku_recall@3": 0.5,
        "sku_mrr": 0.25,
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
