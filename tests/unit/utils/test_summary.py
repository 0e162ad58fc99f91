from __future__ import annotations

import pytest

from prodmatch.utils.summary import format_summary


@pytest.mark.parametrize("k", [1, 5, 10, 20])
def test_summary_uses_the_configured_k(k):
    metrics = {f"retrieval/acc@{k}": 0.5, f"retrieval/acc@{k}/a": 0.25, f"retrieval/ann_recall@{k}": 0.9}
    metrics |= {f"before_fit/retrieval/acc@{k}": 0.1, f"before_fit/retrieval/acc@{k}/a": 0.2}
    text = format_summary("run", metrics, k)
    assert f"Acc@{k}" in text and "50.00%" in text and "10.00%" in text and f"ann_recall@{k}" in text


def test_summary_without_before_fit_and_without_metrics():
    assert "12.50%" in format_summary("run", {"retrieval/acc@3": 0.125}, 3)
    assert "no retrieval metrics" in format_summary("run", {}, 10)
