"""Results table, study figures, galleries and the reporting CLI on fabricated run dirs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prodmatch.errors import ProdmatchError
from prodmatch.reporting import gallery, results, study
from prodmatch.reporting.__main__ import main

N_QUERIES, N_DB, K = 12, 30, 10
TARGETS = ("begovye_dorozhki", "velotrenazhery", "steppery")
HTML_TITLE = "Дорожка <b>Pro</b> & co"


# --------------------------------------------------------------------------------------------- fixtures
def _write_catalog(data: Path) -> None:
    """Queries/database CSVs with skus and images in several modes; one query image and one db image missing."""

    def frame(prefix: str, n: int) -> pd.DataFrame:
        rows = np.arange(n)
        return pd.DataFrame(
            {
                "title": [f"{prefix} item {i}" for i in rows],
                "price": (1000 + 10 * rows).astype(str),
                "cat_1": "c1", "cat_2": "c2", "cat_3": "", "caracteristics": "x",
                "img_ref": [f"images/{prefix}_{i}.png" for i in rows],
                "target": [TARGETS[i % 3] for i in rows],
                "dealer": prefix,
                "sku": [f"sku{i % 5}" for i in rows],
            }
        )  # fmt: skip

    queries, database = frame("query", N_QUERIES), frame("db", N_DB)
    queries.loc[0, "title"] = HTML_TITLE
    database.loc[3, "title"] = "db <script>alert(1)</script>"
    (data / "images").mkdir(parents=True)
    modes = ("RGB", "RGBA", "L", "P", "CMYK", "I;16")
    for prefix, n in (("query", N_QUERIES), ("db", N_DB)):
        for i in range(n):
            mode = modes[i % len(modes)]
            img = Image.new(mode, (200 + i, 120), 128 if mode in ("L", "P", "I;16") else None)
            fmt = "JPEG" if mode == "CMYK" else "PNG"
            img.save(data / "images" / f"{prefix}_{i}.png", format=fmt)
    (data / "images" / "query_11.png").unlink()  # query 11 (= clipped 500/621/626) has no image
    (data / "images" / "db_7.png").write_bytes(b"not an image")  # corrupt
    queries.to_csv(data / "company.csv", index=False)
    database.to_csv(data / "comparable.csv", index=False)


def _matches(seed: int) -> pd.DataFrame:
    q = np.repeat(np.arange(N_QUERIES), K)
    rank = np.tile(np.arange(1, K + 1), N_QUERIES)
    db = (q * 3 + rank * (seed + 1)) % N_DB
    return pd.DataFrame(
        {
            "query_idx": q, "rank": rank, "db_idx": db, "score": 1.0 - 0.05 * rank,
            "query_title": "", "db_title": "", "query_target": "", "db_target": "",
        }
    )  # fmt: skip


def _write_run(
    run_dir: Path, experiment: str, task: str, metrics: dict, mtime: float, data_cfg: dict, seed: int = 0
) -> Path:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    cfg = {"experiment_name": experiment, "task_name": task, **data_cfg}
    if task == "train":
        cfg["model"] = {"_target_": "prodmatch.models.classifier.ImageClassifier"}
    (run_dir / ".hydra" / "config.yaml").write_text(json.dumps(cfg))  # JSON is valid YAML
    _matches(seed).to_csv(run_dir / "matches.csv", index=False)
    os.utime(run_dir / "metrics.json", (mtime, mtime))
    return run_dir


def _metrics(acc: float, prefix: str = "retrieval/", sku: bool = True) -> dict:
    out = {f"{prefix}acc@10": acc, f"{prefix}ann_recall@10": 0.98}
    out.update({f"{prefix}acc@10/{t}": acc - 0.01 * i for i, t in enumerate(TARGETS)})
    if sku:
        out.update({f"{prefix}sku_recall@10": 0.25, f"{prefix}sku_mrr": 0.125})
    return out


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """tmp project: data/, multirun/ (img, title_cat, unknown 'my_demo'), logs/ (older img, ft_img_class)."""
    _write_catalog(tmp_path / "data")
    # config paths through interpolations, the launch dir taken from the run's own hydra.yaml
    data_cfg = {
        "paths": {"data_dir": "${hydra:runtime.cwd}/data"},
        "data": {
            "queries_csv": "${paths.data_dir}/company.csv",
            "database_csv": "${paths.data_dir}/comparable.csv",
            "image_root": "${paths.data_dir}",
        },
    }
    plain_cfg = {"data": {"queries_csv": "data/company.csv", "database_csv": "data/comparable.csv",
                          "image_root": "data"}}  # fmt: skip
    sweep = tmp_path / "multirun" / "2024-05-02" / "10-00-00"
    img = _write_run(sweep / "0", "img", "evaluate", _metrics(0.8), 2000.0, data_cfg, seed=0)
    (img / ".hydra" / "hydra.yaml").write_text(json.dumps({"hydra": {"runtime": {"cwd": str(tmp_path)}}}))
    _write_run(sweep / "1", "title_cat", "evaluate", _metrics(0.9, sku=False), 2000.0, plain_cfg, seed=1)
    _write_run(sweep / "2", "my_demo", "train", _metrics(0.7), 2000.0, plain_cfg, seed=2)
    logs = tmp_path / "logs"
    _write_run(logs / "evaluate" / "runs" / "2024-05-01_09-00-00", "img", "evaluate", _metrics(0.5), 1000.0,
               plain_cfg, seed=3)  # fmt: skip
    ft = {**_metrics(0.95), **_metrics(0.6, prefix="before_fit/retrieval/")}
    _write_run(
        logs / "train" / "runs" / "2024-05-01_10-00-00", "ft_img_class", "train", ft, 1500.0, plain_cfg, 4
    )
    return tmp_path


@pytest.fixture()
def in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)  # the plain configs hold paths relative to the launch dir
    return project


# --------------------------------------------------------------------------------------------- study
def test_study_table_holds_every_reported_figure() -> None:
    rows = study.study_rows()
    assert len(rows) == 19 and len(set(study.study_figures().values())) == 19
    assert [r.table for r in rows].count(study.OFF_THE_SHELF) == 9
    assert [r.table for r in rows].count(study.FINE_TUNED) == 10
    assert study.study_figures()["img40_title_cat_rerank"] == 90.36
    assert study.study_figures()["ft_title_cat_sbert_v2"] == 99.53
    assert study.experiment("ft_img_cos").study_acc10 is None  # the study left it open
    assert all(e.description for e in study.EXPERIMENTS)


# --------------------------------------------------------------------------------------------- results
def test_collect_runs_latest_per_experiment_wins(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="prodmatch.reporting"):
        runs = results.collect_runs([project / "multirun", project / "logs"])
    assert sorted(runs["experiment"]) == ["ft_img_class", "img", "my_demo", "title_cat"]
    img = runs.loc[runs["experiment"] == "img"].iloc[0]
    assert img["retrieval/acc@10"] == pytest.approx(0.8) and "multirun" in str(img["run_dir"])
    assert "1 older duplicate runs dropped" in caplog.text and "img ×1" in caplog.text
    assert len(results.collect_runs([project], latest_only=False)) == 5


def test_collect_runs_without_runs_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ProdmatchError, match="no runs found") as err:
        results.collect_runs([tmp_path, tmp_path / "nope"])
    assert "\n" not in str(err.value)


def test_build_table_puts_study_beside_ours(project: Path) -> None:
    table = results.build_table(results.collect_runs([project]))
    row = table.set_index("experiment")
    assert row.loc["img", "acc@10"] == pytest.approx(80.0)
    assert row.loc["img", "study_acc@10"] == pytest.approx(85.21)
    assert row.loc["img", "delta"] == pytest.approx(80.0 - 85.21)
    assert row.loc["img", "acc@10/velotrenazhery"] == pytest.approx(79.0)
    assert row.loc["img", "sku_recall@10"] == pytest.approx(25.0) and row.loc["img", "sku_mrr"] == 0.125
    assert np.isnan(row.loc["title_cat", "sku_mrr"]) and np.isnan(row.loc["img", "before_fit_acc@10"])
    assert row.loc["ft_img_class", "before_fit_acc@10"] == pytest.approx(60.0)
    assert row.loc["ft_img_class", "table"] == study.FINE_TUNED
    assert row.loc["my_demo", "table"] == study.FINE_TUNED  # unknown name, placed by its task
    assert np.isnan(row.loc["my_demo", "study_acc@10"])
    assert row.loc["text_all", "status"] == "not run" and np.isnan(row.loc["text_all", "acc@10"])
    assert "ft_img_cos" not in row.index  # neither run nor a study figure
    assert len(table) == 19 + 1  # every study row + the unknown experiment
    assert list(table["experiment"][:2]) == ["img", "title"]  # the study's order


def test_write_results_markdown_and_png(project: Path, tmp_path: Path) -> None:
    runs = results.collect_runs([project / "multirun", project / "logs"])
    md, png = tmp_path / "out" / "results.md", tmp_path / "out" / "results.png"
    results.write_results(runs, md, png, "Test results", "synthetic catalog, pretrained=false")
    text = md.read_text(encoding="utf-8")
    for figure in study.study_figures().values():
        assert f"| {figure:.2f} |" in text
    assert text.index("synthetic catalog, pretrained=false") < text.index("## Off-the-shelf models")
    assert text.index("## Off-the-shelf models") < text.index("## Fine-tuned models")
    lines: dict[str, str] = {}  # first table row per experiment (the per-target table comes later)
    for line in text.splitlines():
        if line.startswith("| `"):
            lines.setdefault(line.split("|")[1].strip(), line)
    assert "| `img` | 80.00 | 78.00 | 79.00 |" in text  # per-target table, targets sorted by name
    assert "| 80.00 | 85.21 | -5.21 | — | 25.00 | 0.125 | 98.00 |" in lines["`img`"]
    assert "| not run | 63.14 | — |" in lines["`text_all`"]
    assert "| 95.00 | 94.55 | +0.45 | 60.00 |" in lines["`ft_img_class`"]
    assert text.count("not run") == 19 - 3
    assert "![Acc@10, ours vs study](results.png)" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
        im.verify()


# --------------------------------------------------------------------------------------------- gallery
def test_clip_query_ids() -> None:
    assert gallery.clip_query_ids([0, 500, 621, 626], 1000) == [0, 500, 621, 626]
    assert gallery.clip_query_ids([0, 500, 621, 626], 12) == [0, 11]
    assert gallery.clip_query_ids([5, -3, 5, 2], 4) == [3, 0, 2]
    assert gallery.clip_query_ids([1], 0) == []


def test_image_paths_stay_inside_the_root(tmp_path: Path) -> None:
    assert gallery._image_path(tmp_path, "images/a.png") == (tmp_path / "images" / "a.png", None)
    assert gallery._image_path(tmp_path, "../a.png") == (None, "unsafe image path")
    assert gallery._image_path(tmp_path, "/etc/passwd") == (None, "unsafe image path")
    assert gallery._image_path(tmp_path, "") == (None, "no img_ref")


def test_run_gallery_page(in_project: Path) -> None:
    run = in_project / "multirun" / "2024-05-02" / "10-00-00" / "0"  # config via ${hydra:...} interpolations
    g = gallery.load_gallery(run)
    assert [v.query_id for v in g.queries] == [0, 11] and g.experiment == "img"
    page = gallery.render_run_page(g)
    assert HTML_TITLE not in page and "Дорожка &lt;b&gt;Pro&lt;/b&gt; &amp; co" in page
    db = pd.read_csv(in_project / "data" / "comparable.csv", keep_default_na=False)
    top = _matches(0).query("query_idx == 0")
    for db_idx in top["db_idx"]:
        title = db["title"].iloc[db_idx]
        assert gallery._esc(title) in page
    assert "<script>" not in page  # db row 3 carries a script tag
    assert "score 0.950" in page and "score 0.500" in page
    expected_sku = sum(
        int(db["sku"].iloc[d] == f"sku{q % 5}")
        for q, d in zip(
            *_matches(0).query("query_idx in [0, 11]")[["query_idx", "db_idx"]].to_numpy().T, strict=True
        )
    )
    assert expected_sku > 0 and page.count("★ same SKU</span>") == expected_sku
    assert "clipped to the catalog" in page and "500, 621, 626" in page
    # query 11 has no image file; db row 7 is corrupt and sits in query 0's top-10 (db = 3q + rank)
    assert "no image: file not found" in page and "no image: unreadable" in page
    assert ">3 of 22 images missing" in page  # db row 7 is in both top-10s
    assert page.count('<img src="data:image/jpeg;base64,') == 19


def test_comparison_page_and_table_rows(in_project: Path) -> None:
    runs = results.collect_runs([in_project / "multirun", in_project / "logs"])
    out = in_project / "galleries"
    pages = gallery.write_galleries(runs, out, query_ids=[3, 3, 1])
    assert sorted(p.name for p in pages) == ["compare.html", "ft_img_class.html", "img.html", "my_demo.html",
                                              "title_cat.html"]  # fmt: skip
    compare = (out / "compare.html").read_text(encoding="utf-8")
    assert compare.count("<h2>query ") == 2 and compare.index("query 3") < compare.index("query 1")
    for name in ("img", "title_cat", "ft_img_class", "my_demo"):
        assert f"{name} (Acc@10 " in compare and f'href="{name}.html"' in compare

    rows = gallery.gallery_table_rows(
        in_project / "multirun" / "2024-05-02" / "10-00-00" / "1", [11], max_px=64
    )
    assert len(rows) == 1 + K and all(len(r) == len(gallery.GALLERY_TABLE_COLUMNS) for r in rows)
    assert rows[0][:2] == [11, 0] and rows[0][4] is None and rows[1][1] == 1
    assert all(isinstance(r[-1], Image.Image) and max(r[-1].size) <= 64 for r in rows)
    assert rows[0][-1].getpixel((60, 60)) == (200, 200, 200)  # placeholder for the missing query image


def test_gallery_missing_catalog_is_clear_error(in_project: Path) -> None:
    run = in_project / "multirun" / "2024-05-02" / "10-00-00" / "1"
    with pytest.raises(ProdmatchError, match="nowhere.csv: not found"):
        gallery.load_gallery(run, queries_csv=in_project / "nowhere.csv")


# --------------------------------------------------------------------------------------------- CLI
def test_cli_results_and_gallery(in_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results", "--runs", "multirun", "logs", "--out", "reports", "--note", "synthetic"]) == 0
    assert (in_project / "reports" / "results.png").is_file()
    assert "> synthetic" in (in_project / "reports" / "results.md").read_text(encoding="utf-8")
    args = ["gallery", "--runs", "multirun", "--queries", "0", "500", "--out", "g", "--experiments", "img"]
    assert main(args) == 0
    assert sorted(p.name for p in (in_project / "g").iterdir()) == ["compare.html", "img.html"]
    assert main(["results", "--runs", "empty", "--out", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: no runs found under empty")


def test_cli_module_entry_point(in_project: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "prodmatch.reporting", "results", "--runs", "logs", "--out", "r"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = (in_project / "r" / "results.md").read_text(encoding="utf-8")
    assert "Our figures: 2 runs, queries from data/company.csv" in text
