"""`make reproduce`: experiment coverage, resuming finished runs, and the quick reproduction end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from prodmatch.cli import DONE_MARKER, run_evaluate, run_job
from prodmatch.reporting.study import EXPERIMENTS, FINE_TUNED, OFF_THE_SHELF, study_figures
from prodmatch.reproduce import experiments, main
from tests.helpers.run import REPO_ROOT


def test_every_reported_experiment_has_a_config_and_every_config_is_reported():
    configs = {p.stem for p in (REPO_ROOT / "conf" / "experiment").glob("*.yaml")} - {"demo"}
    assert {e.name for e in EXPERIMENTS} == configs
    # Off-the-shelf rows run through evaluate.py, fine-tuned rows through train.py (their configs pick a model).
    for name in experiments(FINE_TUNED):
        assert "override /model" in (REPO_ROOT / "conf" / "experiment" / f"{name}.yaml").read_text()
    for name in experiments(OFF_THE_SHELF):
        assert "override /model" not in (REPO_ROOT / "conf" / "experiment" / f"{name}.yaml").read_text()
    assert len(study_figures()) == 19


def test_resume_reuses_a_finished_run_and_reruns_a_changed_one(compose_cfg, tmp_path, monkeypatch):
    cfg = compose_cfg("evaluate", ["experiment=title_tfidf", "logger=none", "resume=true"])
    first = run_job(run_evaluate, cfg)
    assert (tmp_path / DONE_MARKER).is_file()

    calls = []
    monkeypatch.setattr("prodmatch.cli.run_evaluate", lambda c: calls.append(c) or {})
    from prodmatch import cli

    assert run_job(cli.run_evaluate, cfg) == pytest.approx(first)
    assert calls == [], "a finished run with the same config must not be recomputed"

    changed = compose_cfg(
        "evaluate", ["experiment=title_tfidf", "logger=none", "resume=true", "retrieval.k=5"]
    )
    run_job(cli.run_evaluate, changed)
    assert len(calls) == 1, "a changed config must rerun"


def test_unknown_profile_is_rejected():
    with pytest.raises(SystemExit):
        main(["--profile", "nope"])


@pytest.mark.slow
def test_reproduce_quick_writes_every_row(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "reports"
    cmd = [
        sys.executable,
        "-m",
        "prodmatch.reproduce",
        "--profile",
        "quick",
        "--runs",
        str(runs),
        "--out",
        str(out),
        f"paths.data_dir={tmp_path}/data",
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (out / "results.md").read_text()
    for exp in EXPERIMENTS:
        row = next(line for line in table.splitlines() if line.startswith(f"| `{exp.name}` |"))
        assert "not run" not in row, exp.name
        metrics = json.loads(next(runs.glob(f"*/{exp.name}/metrics.json")).read_text())
        assert f"{100 * metrics['retrieval/acc@10']:.2f}" in row
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "galleries" / "compare.html").is_file()
    rerun = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert rerun.returncode == 0 and rerun.stdout.count("reusing the finished run") == len(EXPERIMENTS)
