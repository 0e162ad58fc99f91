"""Results table, markdown and chart from saved run dirs, at any k, and the `results` CLI."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodmatch.errors import ProdmatchError
from prodmatch.reporting import render, results, study
from prodmatch.reporting.__main__ import main

N_STUDY_FIGURES = 19
FT_ROW = {"table": "fine_tuned", "order": 99, "description": "my own model", "label": None, "acc10": None}


def _metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())


def _row(text: str, experiment: str) -> str:
    """The first markdown table row of an experiment (the per-target table comes later)."""
    return next(line for line in text.splitlines() if line.startswith(f"| `{experiment}` |"))


@pytest.fixture
def runs_root(tmp_path: Path, make_run) -> Path:
    """multirun/: img (k=10) and my_model (train, own study row); logs/: an older img and ft_img_class."""
    sweep = tmp_path / "multirun" / "2024-05-02" / "10-00-00"
    make_run(sweep / "img", "img", mtime=2000.0)
    make_run(sweep / "my_model", "my_model", task="train", study=FT_ROW, before_fit=True, mtime=2000.0)
    make_run(sweep / "my_demo", "my_demo", task="train", mtime=2000.0)
    logs = tmp_path / "logs"
    make_run(logs / "evaluate" / "runs" / "old", "img", k=5, mtime=1000.0)
    make_run(logs / "train" / "runs" / "ft", "ft_img_class", task="train", before_fit=True, mtime=1500.0)
    return tmp_path


# --------------------------------------------------------------------------------------------- collecting
def test_collect_runs_reads_metrics_and_the_saved_result(runs_root: Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="prodmatch.reporting"):
        runs = results.collect_runs([runs_root / "multirun", runs_root / "logs"])
    assert sorted(runs["experiment"]) == ["ft_img_class", "img", "my_demo", "my_model"]
    img = runs.set_index("experiment").loc["img"]
    assert img["k"] == 10 and "multirun" in str(img["run_dir"])  # the newer run wins
    assert img["retrieval/acc@10"] == pytest.approx(_metrics(Path(img["run_dir"]))["retrieval/acc@10"])
    assert img["task"] == "evaluate" and img["data"] == "synthetic" and img["queries_csv"].endswith(".csv")
    assert "1 older duplicate runs dropped" in caplog.text and "img ×1" in caplog.text
    every = results.collect_runs([runs_root], latest_only=False)
    assert len(every) == 5 and sorted(every["k"]) == [5, 10, 10, 10, 10]


def test_runs_without_a_saved_result_are_skipped(runs_root: Path, caplog) -> None:
    stale = runs_root / "multirun" / "stale"
    stale.mkdir()
    (stale / "metrics.json").write_text('{"retrieval/acc@10": 0.5}')
    with caplog.at_level(logging.WARNING, logger="prodmatch.reporting"):
        runs = results.collect_runs([runs_root / "multirun"])
    assert "stale" not in set(runs["experiment"]) and len(runs) == 3
    assert "skipping run" in caplog.text and "result.json: not found" in caplog.text


def test_no_runs_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ProdmatchError, match="no runs found") as err:
        results.collect_runs([tmp_path, tmp_path / "nope"])
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------- the table
def test_build_table_puts_the_study_beside_ours(runs_root: Path) -> None:
    runs = results.collect_runs([runs_root])
    table = results.build_table(runs)
    row = table.set_index("experiment")
    img = _metrics(Path(row.loc["img", "run_dir"]))
    assert row.loc["img", "acc"] == pytest.approx(100 * img["retrieval/acc@10"])
    assert row.loc["img", "study_acc10"] == pytest.approx(85.21)
    assert row.loc["img", "delta"] == pytest.approx(100 * img["retrieval/acc@10"] - 85.21)
    assert row.loc["img", "acc/steppery"] == pytest.approx(100 * img["retrieval/acc@10/steppery"])
    assert row.loc["img", "sku_recall"] == pytest.approx(100 * img["retrieval/sku_recall@10"])
    assert row.loc["img", "sku_mrr"] == pytest.approx(img["retrieval/sku_mrr"])  # a fraction
    assert np.isnan(row.loc["img", "before_fit_acc"])
    assert row.loc["ft_img_class", "before_fit_acc"] == pytest.approx(50 * img["retrieval/acc@10"])
    assert row.loc["ft_img_class", "table"] == study.FINE_TUNED
    assert row.loc["my_model", "table"] == study.FINE_TUNED  # placed by the run's own study row
    assert row.loc["my_model", "description"] == "my own model"
    assert row.loc["my_demo", "table"] == study.FINE_TUNED  # no study row: placed by its task
    assert row.loc["text_all", "status"] == "not run" and np.isnan(row.loc["text_all", "acc"])
    assert "ft_img_cos" not in row.index  # neither run nor a study figure
    assert len(table) == N_STUDY_FIGURES + 2
    assert list(table["experiment"][:2]) == ["img", "title"]  # the study's order
    assert list(table["experiment"][-2:]) == ["my_model", "my_demo"]  # its study order, then no row
    assert "match_f1" not in table.columns  # no run has it: no column
    assert {"sku_full_recall", "sku_map"} <= set(table.columns)  # every run with SKUs has these


@pytest.mark.parametrize("k", [1, 5, 20])
def test_any_k_is_reported_at_that_k(k: int, tmp_path: Path, make_run) -> None:
    run = make_run(tmp_path / "runs" / "img", "img", k=k)
    make_run(tmp_path / "runs" / "ft", "ft_img_class", k=k, task="train", before_fit=True)
    metrics = _metrics(run)
    table = render.write_results(
        results.collect_runs([tmp_path / "runs"]), tmp_path / "out" / "results.md",
        tmp_path / "out" / "results.png", "Results", "synthetic",
    )  # fmt: skip
    row = table.set_index("experiment").loc["img"]
    assert row["k"] == k and row["acc"] == pytest.approx(100 * metrics[f"retrieval/acc@{k}"])
    assert np.isnan(row["delta"])  # the study's figures are Acc@10: no difference at another k
    text = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("| experiment | study row"))
    assert (
        f"| Acc@{k} | study Acc@10 | Δ | before fit | SKU R@{k} | SKU full R@{k} | SKU mAP@{k} | SKU MRR |"
        in header
    )
    acc, sku = 100 * metrics[f"retrieval/acc@{k}"], 100 * metrics[f"retrieval/sku_recall@{k}"]
    full, sku_map = 100 * metrics[f"retrieval/sku_full_recall@{k}"], metrics[f"retrieval/sku_map@{k}"]
    cells = f"| {acc:.2f} | 85.21 | — | — | {sku:.2f} | {full:.2f} | {sku_map:.3f} | {metrics['retrieval/sku_mrr']:.3f} |"
    assert cells + " 100.00 |" in _row(text, "img")
    assert f"## Acc@{k} per target" in text and "| k |" not in text
    target = f"{100 * metrics[f'retrieval/acc@{k}/steppery']:.2f}"
    assert target in text.split(f"## Acc@{k} per target")[1].split("\n\n")[1]
    assert f"| {50 * metrics[f'retrieval/acc@{k}']:.2f} |" in _row(text, "ft_img_class")  # before fit
    with Image.open(tmp_path / "out" / "results.png") as im:
        im.verify()


def test_mixed_ks_show_each_runs_k(tmp_path: Path, make_run) -> None:
    make_run(tmp_path / "runs" / "img", "img", k=5)
    make_run(tmp_path / "runs" / "title", "title", k=20)
    ten = make_run(tmp_path / "runs" / "title_cat", "title_cat", k=10)
    md = tmp_path / "out" / "results.md"
    render.write_results(results.collect_runs([tmp_path / "runs"]), md, md.with_suffix(".png"), "R", "n")
    text = md.read_text(encoding="utf-8")
    assert "| experiment | study row | description | k | Acc@k | study Acc@10 | Δ |" in text
    assert "| `img` | img (ResNet18) | ResNet18 image embedding | 5 |" in text
    assert "| `title` | title (rubert-tiny2) |" in _row(text, "title") and "| 20 |" in _row(text, "title")
    delta = 100 * _metrics(ten)["retrieval/acc@10"] - 85.11
    assert f"| {delta:+.2f} |" in _row(text, "title_cat")  # the k = 10 run alone is compared
    assert "## Acc@k per target" in text and "| experiment | k | " in text
    assert "| `text_all` |" not in text and "`text_all`" in text.split("Not run in this report: ")[1]


def test_product_level_columns_appear_when_present(tmp_path: Path, make_run) -> None:
    run = make_run(tmp_path / "runs" / "img", "img", k=5)
    make_run(tmp_path / "runs" / "title", "title", k=5)
    extra = {"retrieval/sku_full_recall@5": 0.4, "retrieval/sku_map@5": 0.321, "match/f1": 0.75}
    (run / "metrics.json").write_text(json.dumps({**_metrics(run), **extra}))
    md = tmp_path / "out" / "results.md"
    table = render.write_results(
        results.collect_runs([tmp_path / "runs"]), md, md.with_suffix(".png"), "R", "n"
    )
    row = table.set_index("experiment")
    assert row.loc["img", "sku_full_recall"] == pytest.approx(40.0) and row.loc["img", "match_f1"] == 0.75
    assert np.isnan(row.loc["title", "match_f1"])
    text = md.read_text(encoding="utf-8")
    assert "| SKU R@5 | SKU full R@5 | SKU mAP@5 | SKU MRR | match F1 | ANN R@5 |" in text
    assert "| 40.00 | 0.321 |" in _row(text, "img") and "| 0.750 |" in _row(text, "img")


def test_wall_time_comes_from_the_job_status_and_a_section_without_runs_is_one_line(
    tmp_path: Path, make_run
) -> None:
    run = make_run(tmp_path / "runs" / "img", "img")
    (run / "job_status.json").write_text(json.dumps({"status": "ok", "experiment": "img", "wall_s": 150.0}))
    make_run(tmp_path / "runs" / "title", "title")  # no job_status.json: no wall time, no error
    md = tmp_path / "out" / "results.md"
    table = render.write_results(
        results.collect_runs([tmp_path / "runs"]), md, md.with_suffix(".png"), "R", "n"
    ).set_index("experiment")
    assert table.loc["img", "wall_min"] == pytest.approx(2.5) and np.isnan(table.loc["title", "wall_min"])
    text = md.read_text(encoding="utf-8")
    assert _row(text, "img").endswith("| 2.5 |") and _row(text, "title").endswith("| — |")
    fine_tuned = text.split("## Fine-tuned models")[1].split("##")[0]
    assert fine_tuned.strip().startswith("Not run in this report: `ft_img_contrastive`, ")
    assert "| not run |" not in fine_tuned


def test_markdown_and_chart_layout(runs_root: Path, tmp_path: Path) -> None:
    runs = results.collect_runs([runs_root / "multirun", runs_root / "logs"])
    md, png = tmp_path / "out" / "results.md", tmp_path / "out" / "results.png"
    render.write_results(runs, md, png, "Test results", "synthetic catalog, pretrained=false")
    text = md.read_text(encoding="utf-8")
    ran = {"img", "ft_img_class"}  # the study rows run under runs_root: only runs are rows of the tables
    figures = [e.study_acc10 for e in study.experiments() if e.study_acc10 is not None and e.name in ran]
    assert len(figures) == 2 and all(f"| {figure:.2f} |" in text for figure in figures)
    assert text.index("synthetic catalog, pretrained=false") < text.index("## Off-the-shelf models")
    assert text.index("## Off-the-shelf models") < text.index("## Fine-tuned models")
    assert "| not run |" not in text and text.count("Not run in this report: ") == 2
    assert sum(part.split(".")[0].count("`") // 2 for part in text.split("Not run in this report: ")[1:]) == (
        N_STUDY_FIGURES - 2
    )
    assert "![Acc@10, ours vs study](results.png)" in text
    assert "- `img`: `../multirun/2024-05-02/10-00-00/img`" in text  # relative to the report's folder
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------- CLI
def test_cli_results(runs_root: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(runs_root)
    assert main(["results", "--runs", "multirun", "logs", "--out", "reports", "--note", "synthetic"]) == 0
    assert (runs_root / "reports" / "results.png").is_file()
    assert "> synthetic" in (runs_root / "reports" / "results.md").read_text(encoding="utf-8")
    assert main(["results", "--runs", "empty", "--out", "x"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: no runs found under empty")


@pytest.mark.slow  # a fresh interpreter imports torch through the catalog layer: 10-40 s on a shared machine
def test_cli_module_entry_point_writes_the_default_note(runs_root: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "prodmatch.reporting", "results", "--runs", "logs", "--out", "r"],
        cwd=runs_root, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = (runs_root / "r" / "results.md").read_text(encoding="utf-8")
    assert "Our figures: 2 runs at k = 5, 10, queries from synthetic (company_data.csv)" in text


def test_product_level_section_has_seen_beside_unseen_and_no_study_columns(tmp_path: Path, make_run) -> None:
    run = make_run(tmp_path / "runs" / "product_fused", "product_fused", k=5)
    make_run(tmp_path / "runs" / "img", "img", k=5)
    extra = {"retrieval/sku_mrr": 0.5, "seen/retrieval/sku_mrr": 0.875, "seen/match/f1": 0.625}
    # the trained net before its first step: the untrained row of its family, beside the trained figure
    extra |= {"before_fit/retrieval/sku_recall@5": 0.125, "before_fit/retrieval/sku_mrr": 0.0625}
    (run / "metrics.json").write_text(json.dumps({**_metrics(run), **extra}))
    md = tmp_path / "out" / "results.md"
    render.write_results(results.collect_runs([tmp_path / "runs"]), md, md.with_suffix(".png"), "R", "n")
    text = md.read_text(encoding="utf-8")
    section = text[text.index("## Product level") :]
    header = section.splitlines()[2]
    assert "study Acc@10" not in header and "seen SKU MRR" in header and "seen match F1" in header
    assert "| SKU MRR | untrained SKU R@5 | untrained SKU MRR | seen SKU MRR |" in header
    assert "| 0.500 | 12.50 | 0.062 | 0.875 |" in _row(section, "product_fused")
    study_header = text[text.index("## Off-the-shelf") :].splitlines()[2]
    assert "study Acc@10" in study_header and "seen" not in study_header  # no run there has seen/ figures


def test_a_report_names_the_commit_and_date_that_made_it(tmp_path: Path, make_run) -> None:
    import datetime as dt
    import subprocess

    make_run(tmp_path / "runs" / "img", "img")
    md = tmp_path / "out" / "results.md"
    render.write_results(results.collect_runs([tmp_path / "runs"]), md, md.with_suffix(".png"), "R", "n")
    line = next(x for x in md.read_text(encoding="utf-8").splitlines() if x.startswith("> made by prodmatch"))
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a git checkout (CI's fresh clone is one)
        assert f"commit {head.stdout.strip()}" in line
    assert dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d") in line
