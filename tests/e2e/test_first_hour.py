"""A new user's first hour: their own CSVs in one step (`data=csv`), the Python API, a sweep's comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.run import REPO_ROOT, run_script

SMALL = ["encoders.tfidf.dim=64", "num_workers=0"]


@pytest.fixture(scope="module")
def own_csvs(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny catalog as a shop of the user's own would export it: only name (the title), target, dealer, sku."""
    shop = tmp_path_factory.mktemp("first_hour") / "shop"
    shop.mkdir()
    for name in ("company_data.csv", "comparable_data.csv"):
        frame = pd.read_csv(tiny_data_dir / "synthetic" / name, dtype=str, keep_default_na=False)
        frame.rename(columns={"title": "name"})[["name", "target", "dealer", "sku"]].to_csv(
            shop / name, index=False
        )
    return shop


def _home(tmp_path: Path) -> dict[str, str]:
    """A home folder of the test's own, so nothing a run writes outside its run dir can hide."""
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "XDG_DATA_HOME": str(home / ".local"),
            "XDG_CONFIG_HOME": str(home / ".config")}  # fmt: skip


@pytest.mark.slow  # a W&B run in a fresh process: about 25 s
def test_own_csvs_with_a_mapped_column_run_as_written_and_are_named_after_their_folder(own_csvs, tmp_path):
    env = _home(tmp_path)
    args = ["data=csv", f"data.queries_csv={own_csvs}/company_data.csv",
            f"data.database_csv={own_csvs}/comparable_data.csv", "data.columns.title=name", "experiment=title_tfidf",
            f"paths.cache_dir={tmp_path}/cache", *SMALL]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "evaluate.py"), *args],
        cwd=tmp_path,
        env={**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "title_tfidf on shop (index AnnoyIndex): evaluate run in" in proc.stdout
    assert "anonymous" not in proc.stdout + proc.stderr  # no W&B warning of our own making
    (run_dir,) = (tmp_path / "logs" / "evaluate" / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 < metrics["retrieval/acc@10"] <= 1.0
    assert (run_dir / "wandb" / "staging").is_dir()  # W&B's staging is the run dir's
    assert not list(Path(env["HOME"]).rglob("*wandb*")), "W&B wrote into the home folder"


@pytest.mark.slow  # three runs in process: about 25 s
def test_the_python_api_runs_a_task_returns_its_run_and_leaves_no_hydra_state(
    own_csvs, tmp_path, monkeypatch
):
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    import prodmatch as pm

    monkeypatch.chdir(tmp_path)
    overrides = ["data.columns.title=name", "logger=none", f"paths.cache_dir={tmp_path}/cache", *SMALL]
    queries, database = own_csvs / "company_data.csv", own_csvs / "comparable_data.csv"
    run = pm.evaluate("title_tfidf", queries=queries, database=database, overrides=overrides)
    assert not GlobalHydra.instance().is_initialized() and not HydraConfig.initialized()
    assert (
        run.metrics["retrieval/acc@10"]
        == json.loads((run.run_dir / "metrics.json").read_text())["retrieval/acc@10"]
    )
    assert run.run_dir.parent == tmp_path / "logs" / "evaluate" / "runs"
    assert (run.run_dir / ".hydra" / "overrides.yaml").is_file()
    assert run.result.k == 10 and len(run.result.queries) == len(run.matches()["query_idx"].unique())
    deeper = pm.match(
        "title_tfidf",
        queries=queries,
        database=database,
        k=3,
        overrides=[*overrides, "retrieval/index=exact"],
    )
    assert deeper.run_dir != run.run_dir and deeper.result.k == 3
    assert run.result.search["index"] == "AnnoyIndex" and deeper.result.search["index"] == "ExactIndex"
    assert set(deeper.matches()["rank"]) == {1, 2, 3}


def test_the_python_api_raises_a_bad_input_as_its_one_line_error_and_leaves_no_hydra_state(
    own_csvs, tmp_path, monkeypatch
):
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    import prodmatch as pm
    from prodmatch.errors import CatalogError, ConfigError

    monkeypatch.chdir(tmp_path)
    queries, database = own_csvs / "company_data.csv", own_csvs / "comparable_data.csv"
    with pytest.raises(CatalogError, match=r"^data.columns.title=nam: company_data.csv has no column 'nam'"):
        pm.evaluate(
            "title_tfidf",
            queries=queries,
            database=database,
            overrides=["data.columns.title=nam", "logger=none"],
        )
    assert not GlobalHydra.instance().is_initialized() and not HydraConfig.initialized()
    with pytest.raises(ConfigError, match=r"^retrieval.index=faiss is not a backend choice"):
        pm.evaluate("title_tfidf", overrides=["retrieval.index=faiss"])
    assert (
        len(list((tmp_path / "logs" / "evaluate" / "runs").iterdir())) == 1
    )  # the config error made no run dir


def test_import_prodmatch_is_cheap():
    code = "import sys, prodmatch as pm; pm.__version__; print(sorted(m for m in ('torch', 'hydra', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow  # two jobs in a fresh process: about 20 s
def test_a_sweep_ends_in_a_comparison_of_its_jobs(tiny_data_dir, tmp_path):
    args = ["-m", "experiment=title_tfidf,title_cat_tfidf", f"paths.data_dir={tiny_data_dir}",
            "data.synthetic.scale=tiny", f"paths.cache_dir={tmp_path}/cache", "logger=none", *SMALL]  # fmt: skip
    proc = run_script("evaluate.py", args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (summary,) = (tmp_path / "multirun").glob("*/*/sweep_summary.csv")
    table = pd.read_csv(summary)
    assert len(table) == 2 and set(table["overrides"]) == {
        "experiment=title_tfidf",
        "experiment=title_cat_tfidf",
    }
    assert table["retrieval/acc@10"].is_monotonic_decreasing  # sorted by the sweep's metric
    assert (summary.parent / "sweep_summary.md").is_file()
    job_dirs = sorted(p.name for p in summary.parent.iterdir() if p.is_dir())
    assert [d[:2] for d in job_dirs] == ["0_", "1_"]  # <number>_<overrides>, paths left out
    assert "experiment=title_tfidf" in job_dirs[0] and str(tmp_path).strip("/") not in job_dirs[0]
    assert (
        f"python -m prodmatch.reporting results --runs {summary.parent.relative_to(tmp_path)}" in proc.stdout
    )
