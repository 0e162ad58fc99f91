"""The comparison a sweep ends in: one row per job, the overrides that set it apart, sorted by the metric."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from prodmatch.tasks.resolvers import job_dirname
from prodmatch.tasks.sweep import SweepSummary

METRIC = "retrieval/acc@10"


def _job(sweep: Path, num: int, experiment: str, metrics: dict | None, status: str = "ok") -> None:
    job = sweep / job_dirname(num, [f"experiment={experiment}", f"paths.data_dir={sweep}"])
    (job / ".hydra").mkdir(parents=True)
    overrides = [f"experiment={experiment}", "logger=none", f"paths.data_dir={sweep}"]
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": {"job": {"num": num}}}), job / ".hydra" / "hydra.yaml")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    (job / "job_status.json").write_text(json.dumps({"status": status, "wall_s": 3.0}))


def _cfg(sweep: Path):
    return OmegaConf.create({"optimized_metric": METRIC, "hydra": {"sweep": {"dir": str(sweep)}}})


def test_the_summary_has_one_row_per_job_best_first_and_names_the_next_commands(tmp_path, capsys):
    _job(
        tmp_path,
        0,
        "title",
        {METRIC: 0.5, f"{METRIC}/shoes": 0.1, "before_fit/" + METRIC: 0.2, "match/f1": 0.4},
    )
    _job(tmp_path, 1, "img", {METRIC: 0.8, "retrieval/ann_recall_sample": 49, "data/dropped/x": 1})
    _job(tmp_path, 2, "img_title", None, status="failed")
    with pytest.raises(SystemExit) as stop:  # one job failed: the sweep ends in its comparison, then exits 1
        SweepSummary().on_multirun_end(_cfg(tmp_path))
    assert stop.value.code == 1
    table = pd.read_csv(tmp_path / "sweep_summary.csv")
    assert table["job"].tolist() == [1, 0, 2] and table["overrides"].tolist() == [
        "experiment=img",
        "experiment=title",
        "experiment=img_title",
    ]  # only what sets the jobs apart; the failed job last
    assert table.columns.tolist() == [
        "job",
        "overrides",
        "status",
        METRIC,
        "match/f1",
        "job/wall_s",
        "job_dir",
    ]
    assert table["status"].tolist() == ["ok", "ok", "failed"] and math.isnan(table[METRIC].iloc[2])
    assert table["job_dir"].tolist() == ["1_experiment=img", "0_experiment=title", "2_experiment=img_title"]
    md = (tmp_path / "sweep_summary.md").read_text()
    assert md.splitlines()[2].startswith("| 1 | experiment=img | ok | 0.8000 | — |")
    out = capsys.readouterr().out
    assert md in out and f"python -m prodmatch.reporting results --runs {tmp_path}" in out
    assert f"python -m prodmatch.reporting gallery --runs {tmp_path}" in out


def test_a_job_dir_is_named_by_its_number_and_overrides_without_paths():
    assert job_dirname(0, ["experiment=title_tfidf"]) == "0_experiment=title_tfidf"
    assert (
        job_dirname(3, ["data.queries_csv=/a/b.csv", "paths.log_dir=x", "model.lr=0.1"]) == "3_model.lr=0.1"
    )
    assert job_dirname(1, ["retrieval.channels=[{encoder: a}]"]) == "1_retrieval.channels=[_encoder__a_]"
    assert job_dirname(2, []) == "2" and len(job_dirname(4, ["x=" + "y" * 500])) == len("4_") + 80
