"""A cached evaluation pays only for what it runs: no Lightning or W&B for logger=csv; the start-up bench."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.run import OFFLINE_ENV, REPO_ROOT, cli_overrides

# Runs evaluate.py as its Hydra main, then writes which of these modules the process imported.
_PROBE = """
import atexit, json, runpy, sys
out, argv = sys.argv[1], sys.argv[2:]
watched = ("pytorch_lightning", "lightning_fabric", "wandb")
atexit.register(lambda: open(out, "w").write(json.dumps([m for m in watched if m in sys.modules])))
sys.argv = ["evaluate.py", *argv]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_evaluate_with_csv_logging_imports_neither_lightning_nor_wandb(tiny_data_dir, tmp_path):
    probe = tmp_path / "modules.json"
    args = [*cli_overrides(tiny_data_dir, tmp_path), "experiment=title_cat_tfidf", "logger=csv"]
    args.append(f"hydra.run.dir={tmp_path / 'run'}")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(probe), *args],
        cwd=REPO_ROOT,
        env={**os.environ, **OFFLINE_ENV},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(probe.read_text()) == []
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    csv = pd.read_csv(tmp_path / "run" / "csv" / "metrics.csv")  # the CSV log is written all the same
    assert csv["retrieval/acc@10"].iloc[-1] == pytest.approx(metrics["retrieval/acc@10"])
    assert (tmp_path / "run" / "csv" / "hparams.yaml").is_file()


@pytest.mark.slow
def test_startup_bench_reports_its_keys(tiny_data_dir, tmp_path):
    out = tmp_path / "startup.json"
    overrides = cli_overrides(tiny_data_dir, tmp_path)
    cmd = [sys.executable, "-m", "prodmatch.bench", "--startup", "--json", str(out), "--repeats", "1"]
    done = subprocess.run(
        [*cmd, "--data", "synthetic", *overrides],
        cwd=tmp_path,
        env={**os.environ, **OFFLINE_ENV},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    keys = {"import_s", "peak_rss_mb", "retrieval_share", "wall_s", "retrieval_s", "stages", "heavy_modules"}
    assert keys <= set(result)
    assert 0 < result["retrieval_share"] < 1 and result["peak_rss_mb"] > 0 and result["import_s"] > 0
    assert {"embed_s", "search_s", "recall_s", "score_s"} <= set(result["stages"])
    assert result["heavy_modules"] == []
    assert Path(out).stat().st_size > 0
