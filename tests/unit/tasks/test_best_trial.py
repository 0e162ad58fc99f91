"""The best-trial report reads what the jobs left in the sweep dir: values, failures, ties, the printed summary."""

from __future__ import annotations

import json
import math
from pathlib import Path

from omegaconf import OmegaConf

from prodmatch.tasks.best_trial import BestTrialReport, best_of, collect_trials

METRIC = "retrieval/acc@10"


def _job(sweep: Path, num: int, metrics: dict | None, status: str | None = None, lr: float = 0.1) -> Path:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create([f"model.optimizer.lr={lr}"]), job / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create({"hydra": {"job": {"num": num}}}), job / ".hydra" / "hydra.yaml")
    OmegaConf.save(OmegaConf.create({"model": {"optimizer": {"lr": lr}}}), job / ".hydra" / "config.yaml")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if status is not None:
        (job / "job_status.json").write_text(json.dumps({"status": status}))
    return job


def _sweep_cfg(sweep: Path, direction: str = "maximize"):
    return OmegaConf.create(
        {
            "optimized_metric": METRIC,
            "hydra": {"sweep": {"dir": str(sweep)}, "sweeper": {"direction": direction}},
        }
    )


def test_failed_unfinished_and_nan_jobs_have_no_value(tmp_path):
    _job(tmp_path, 0, {METRIC: 0.5})
    _job(tmp_path, 1, None)  # crashed before writing metrics
    _job(tmp_path, 2, {METRIC: math.nan})
    _job(tmp_path, 3, {METRIC: 0.9}, status="failed")  # failed after writing them
    trials = collect_trials(tmp_path, METRIC)
    assert [(t.num, t.value) for t in trials] == [(0, 0.5), (1, None), (2, None), (3, None)]
    assert best_of(trials).num == 0


def test_best_follows_the_direction_and_ties_go_to_the_first_job(tmp_path):
    for num, value in enumerate([0.3, 0.7, 0.7, 0.1]):
        _job(tmp_path, num, {METRIC: value})
    trials = collect_trials(tmp_path, METRIC)
    assert best_of(trials, "maximize").num == 1
    assert best_of(trials, "minimize").num == 3
    assert best_of([t for t in trials if t.num > 10]) is None


def test_report_writes_best_trial_yaml_and_prints_the_metrics(tmp_path, capsys):
    _job(tmp_path, 0, {METRIC: 0.25, "retrieval/acc@10/shoes": 0.5}, lr=0.01)
    _job(tmp_path, 1, {METRIC: 0.75, "before_fit/" + METRIC: 0.2, "retrieval/acc@10/shoes": 1.0}, lr=0.001)
    _job(tmp_path, 2, None, status="failed")
    BestTrialReport().on_multirun_end(_sweep_cfg(tmp_path))
    record = OmegaConf.load(tmp_path / "best_trial.yaml")
    assert record.job_num == 1 and record.job_dir == "1" and record.value == 0.75
    assert record.overrides == ["model.optimizer.lr=0.001"]
    assert record.trials == {"total": 3, "finished": 2, "failed": 1}
    assert record.metrics["retrieval/acc@10/shoes"] == 1.0
    assert record.config.model.optimizer.lr == 0.001
    out = capsys.readouterr().out
    assert "best trial of 3 (2 finished, 1 failed): job 1, retrieval/acc@10 = 0.7500" in out
    assert "model.optimizer.lr=0.001" in out
    assert "before_fit/retrieval/acc@10" in out
    assert "shoes" not in out  # per-category breakdowns stay in the file


def test_report_with_no_finished_trial_says_so_and_writes_nothing(tmp_path, capsys):
    _job(tmp_path, 0, None, status="failed")
    BestTrialReport().on_multirun_end(_sweep_cfg(tmp_path))
    assert "no trial of 1 finished" in capsys.readouterr().out
    assert not (tmp_path / "best_trial.yaml").exists()


def test_torn_records_of_a_job_killed_while_writing_never_crash_the_report(tmp_path):
    _job(tmp_path, 0, {METRIC: 0.5})
    torn = _job(tmp_path, 1, None)
    (torn / "metrics.json").write_text('{"retrieval/ac')  # killed mid-write (or a power loss)
    (torn / "job_status.json").write_text("")
    running = _job(tmp_path, 2, {METRIC: 0.9}, status="running")  # killed outright: never finished
    trials = collect_trials(tmp_path, METRIC)
    assert [(t.num, t.value) for t in trials] == [(0, 0.5), (1, None), (2, None)]
    assert best_of(trials).num == 0 and running.is_dir()
