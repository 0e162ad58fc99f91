"""The study-size search benchmark: runs end to end at a tiny size and writes its section of the results."""

from __future__ import annotations

from prodmatch.bench import search


def test_bench_smoke(tmp_path, capsys):
    """The benchmark module runs end to end at a tiny size and writes its markdown table."""
    out = tmp_path / "bench" / "results.md"
    out.parent.mkdir()
    out.write_text("<!-- bench:scale-5 -->\nkept\n<!-- /bench:scale-5 -->\n")
    args = ["--out", str(out), "--queries", "30", "--db", "300", "--dim", "16", "--repeats", "1"]
    text = search.main([*args, "--encode-images", "4"])
    written = out.read_text()
    assert text in written and "| benchmark | size | time | notes |" in text
    assert "kept" in written  # other sections survive a rewrite
    assert "recall@10 vs exact" in text and "same top-10 as ExactIndex: yes" in text
    assert "same value as metric_dict: yes" in text
    assert "batching is" in text
    assert text in capsys.readouterr().out
    rows = search.run_benches(search.BenchConfig(queries=5, db=40, dim=8, repeats=1), [search.bench_fusion])
    assert len(rows) == 1 and rows[0].seconds > 0
