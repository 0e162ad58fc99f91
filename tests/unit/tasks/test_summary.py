from __future__ import annotations

import pytest

from prodmatch.tasks.summary import format_summary


@pytest.mark.parametrize("k", [1, 5, 10, 20])
def test_summary_uses_the_configured_k(k):
    metrics = {f"retrieval/acc@{k}": 0.5, f"retrieval/acc@{k}/a": 0.25, f"retrieval/ann_recall@{k}": 0.9}
    metrics |= {f"before_fit/retrieval/acc@{k}": 0.1, f"before_fit/retrieval/acc@{k}/a": 0.2}
    text = format_summary("run", metrics, k)
    assert f"Acc@{k}" in text and "50.00%" in text and "10.00%" in text and f"ann_recall@{k}" in text


def test_summary_without_before_fit_and_without_metrics():
    assert "12.50%" in format_summary("run", {"retrieval/acc@3": 0.125}, 3)
    assert "no retrieval metrics" in format_summary("run", {}, 10)


def test_product_protocol_shows_unseen_beside_seen_and_the_fusion_weights():
    metrics = {
        "retrieval/acc@10": 0.9,
        "retrieval/sku_mrr": 0.75,
        "seen/retrieval/sku_mrr": 0.5,
        "match/f1": 0.6,
    }
    metrics |= {"fusion/weight/image": 0.25, "fusion/weight/title:tfidf_word": 0.75}
    lines = format_summary("run", metrics, 10).splitlines()
    assert lines[2].split() == ["product", "level", "unseen", "seen"]
    assert lines[3].split() == ["sku_mrr", "0.7500", "0.5000"]
    assert lines[4].split() == ["f1", "0.6000", "—"]  # no seen figure: shown as missing, not as zero
    assert lines[5].split() == ["fusion", "weight", "image", "0.2500"]
    assert lines[6].split()[-1] == "0.7500"
