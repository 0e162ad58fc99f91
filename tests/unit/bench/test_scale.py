"""The scale benchmark: seeded data, per-backend measurements, the JSON rows, the table and the plot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prodmatch.bench import scale
from prodmatch.bench.scale_worker import (
    ScaleSpec,
    bare_torch_topk,
    measure,
    scale_data,
    tie_recall,
    truth_with_ties,
)


def tiny(tmp_path, **kw) -> ScaleSpec:
    return ScaleSpec(db=600, dim=32, queries=40, sweep_queries=20, truth=str(tmp_path / "truth.npy"), **kw)


def test_scale_data_is_seeded_unit_and_clustered(tmp_path):
    q, db = scale_data(tiny(tmp_path))
    q2, db2 = scale_data(tiny(tmp_path))
    np.testing.assert_array_equal(db, db2)
    np.testing.assert_array_equal(q, q2)
    assert q.shape == (40, 32) and db.shape == (600, 32) and db.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(db, axis=1), 1.0, atol=1e-5)
    assert not np.array_equal(db, scale_data(tiny(tmp_path, seed=1))[1])
    top = (q @ db.T).max(axis=1)
    assert np.median(top) > 0.5  # each query has close neighbours: its product group


def test_bare_torch_matches_exact_ids(tmp_path):
    from prodmatch.retrieval.index import ExactIndex

    q, db = scale_data(tiny(tmp_path))
    ids = bare_torch_topk(q, db, 10, max_memory_mb=0.01)  # several query chunks
    np.testing.assert_array_equal(ids, ExactIndex().build(db).search(q, 10)[0])


def test_recall_counts_any_of_the_cards_tied_at_the_cut(tmp_path):
    """Duplicate cards (identical titles) tie: whichever of them a backend returns is a right answer."""
    q, db = scale_data(tiny(tmp_path))
    db = np.vstack([db, np.repeat(db[:1], 5, axis=0)])  # five more copies of card 0
    query = db[:1] + 1e-3 * np.ones((1, db.shape[1]), dtype=np.float32)
    truth, facts = truth_with_ties(query, db, 3, max_memory_mb=1024)
    assert set(truth[0][truth[0] >= 0].tolist()) == {0, 600, 601, 602, 603, 604}
    assert facts == {"ties_at_cut": 1.0, "ties_cut_short": 0.0}
    assert tie_recall(np.array([[604, 0, 601]]), truth, 3) == 1.0
    assert tie_recall(np.array([[604, 0, 7]]), truth, 3) == pytest.approx(2 / 3)
    assert tie_recall(np.array([[604, -1, -1]]), truth, 3) == pytest.approx(1 / 3)
    truth, facts = truth_with_ties(q, db[:600], 10, max_memory_mb=1024)
    assert facts["ties_at_cut"] == 0.0 and (truth[:, 10:] == -1).all()  # random vectors: no ties
    np.testing.assert_array_equal(truth[:, :10], bare_torch_topk(q, db[:600], 10, 1024))


@pytest.mark.slow
def test_measure_every_backend_and_render(tmp_path):
    spec = tiny(tmp_path)
    base = measure("torch", spec)
    assert base["query_s"] > 0 and base["peak_rss_mb"] > 0 and (tmp_path / "truth.npy").is_file()
    rows = {name: measure(name, spec) for name in scale.BACKENDS}
    assert rows["exact"]["recall@10"] == 1.0 and "sweep" not in rows["exact"]
    assert rows["exact"]["ratio_to_torch_same_process"] > 0
    assert rows["faiss_hnsw"]["params"] == {"ef_search": 64}
    for name, knob in scale.KNOBS.items():
        points = rows[name]["sweep"]
        assert len(points) >= 4 and all(p["queries"] == 20 and 0 <= p["recall@10"] <= 1 for p in points)
        assert [p[knob] for p in points] == sorted(p[knob] for p in points)
    for row in rows.values():
        row["ratio_to_torch"] = row["query_s"] / base["query_s"]
    rows["faiss_ivfpq"] = {"backend": "faiss_ivfpq", "error": "ConfigError: no faiss"}
    result = {"spec": spec.__dict__, "date": "today", "torch": base, "backends": rows}
    text = scale.to_markdown(result, plot=str(tmp_path / "scale_600.png"))
    assert "| exact | - |" in text and "| faiss_ivfpq | failed: ConfigError: no faiss |" in text
    assert "ef_search=" in text and "(scale_600.png)" in text
    scale.plot_sweeps(result, tmp_path / "scale_600.png")
    assert (tmp_path / "scale_600.png").read_bytes()[:4] == b"\x89PNG"


def test_best_point_is_the_fastest_above_target():
    row = {
        "sweep": [
            {"nprobe": 1, "recall@10": 0.8, "queries_per_s": 900},
            {"nprobe": 4, "recall@10": 0.991, "queries_per_s": 500},
            {"nprobe": 16, "recall@10": 0.999, "queries_per_s": 200},
        ]
    }
    assert scale.best_point(row, 10)["nprobe"] == 4
    assert scale.best_point(row, 10, target=0.9999) is None


def test_unknown_backend_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown backend"):
        scale.main(["--backends", "exact,hnswlib", "--json", str(tmp_path / "x.json")])


@pytest.mark.slow
def test_scale_cli_end_to_end(tmp_path):
    out, md = tmp_path / "scale.json", tmp_path / "results.md"
    argv = ["--db", "500", "--dim", "8", "--queries", "30", "--sweep-queries", "10", "--json", str(out)]
    scale.main([*argv, "--backends", "exact,annoy", "--markdown", str(md)])
    result = json.loads(out.read_text())
    assert set(result["backends"]) == {"exact", "annoy"} and result["torch"]["query_s"] > 0
    assert all("ratio_to_torch" in row and "peak_rss_mb" in row for row in result["backends"].values())
    assert "<!-- bench:scale-500 -->" in md.read_text() and (tmp_path / "scale.png").is_file()
    scale.main([*argv, "--backends", "exact", "--markdown", str(md), "--add-to", "--no-sweep"])
    merged = json.loads(out.read_text())
    assert sorted(merged["backends"]) == ["annoy", "exact"], (
        "the earlier annoy row is kept, exact is the new one"
    )
    annoy = merged["backends"]["annoy"]
    assert annoy["query_s"] == result["backends"]["annoy"]["query_s"]
    assert annoy["exact_query_s"] == result["backends"]["exact"]["query_s"]  # its own run's exact search
    with pytest.raises(SystemExit, match="same --db"):
        scale.main(["--db", "400", *argv[2:], "--backends", "exact", "--add-to"])


def _row(date: str, query_s: float, **extra) -> dict:
    return {"run_date": date, "query_s": query_s, "build_s": 1.0, "queries_per_s": 100 / query_s,
            "recall@10": 1.0, "peak_rss_mb": 10.0, "ratio_to_torch": query_s / 2} | extra  # fmt: skip


def test_merged_rows_keep_their_own_runs_ratios_and_are_marked():
    spec = {"db": 1000, "dim": 8, "queries": 100, "k": 10, "seed": 0, "max_memory_mb": 1024}
    old = {
        "spec": spec, "date": "day 1", "torch": {"query_s": 2.0, "peak_rss_mb": 5.0},
        "backends": {"exact": _row("day 1", 2.0), "annoy": _row("day 1", 1.0, sweep=[
            {"search_k": 10, "recall@10": 0.995, "queries_per_s": 1000.0}])},
    }  # fmt: skip
    new = {
        "spec": spec, "date": "day 2", "torch": {"query_s": 4.0, "peak_rss_mb": 5.0},
        "backends": {"exact": _row("day 2", 8.0)},
    }  # fmt: skip
    merged = scale.merge_results(old, new)
    assert list(merged["backends"]) == ["exact", "annoy"] and merged["backends"]["exact"]["query_s"] == 8.0
    annoy = merged["backends"]["annoy"]
    assert annoy["exact_query_s"] == 2.0 and annoy["baseline_query_s"] == 2.0  # day 1's, not day 2's
    text = scale.to_markdown(merged)
    assert (
        "| annoy (day 1) |" in text and "| exact |" in text and "earlier run of the same sizes, day 1" in text
    )
    # 1000 queries/s against day 1's exact (2 s per 100 queries = 0.02 s a query): 0.05x, not day 2's 0.0125x
    assert "search_k=10: 0.995 (0.05x)" in text
    with pytest.raises(SystemExit, match="same --db"):
        scale.merge_results(old, new | {"spec": spec | {"db": 10}})
