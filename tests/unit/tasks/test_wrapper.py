from __future__ import annotations

import json
import math
import signal

import pytest
from omegaconf import open_dict

from prodmatch.errors import ConfigError
from prodmatch.tasks import wrapper as task_module
from prodmatch.tasks.run import Run
from prodmatch.tasks.wrapper import STATUS_FILE, task_wrapper
from prodmatch.utils import atomic
from prodmatch.utils.signals import Interrupted
from tests.helpers.faults import filler, small_disk, temporaries


def _status(tmp_path) -> dict:
    return json.loads((tmp_path / STATUS_FILE).read_text())


def _writes_metrics(calls: list):
    @task_wrapper
    def task(cfg):
        calls.append(cfg)
        metrics = {"retrieval/acc@10": 0.5}
        (tmp := cfg.paths.output_dir) and (__import__("pathlib").Path(tmp) / "metrics.json").write_text(
            json.dumps(metrics)
        )
        return Run(cfg.paths.output_dir, metrics)

    return task


def test_expected_error_is_one_line_and_exit_1_in_a_single_run(compose_cfg, tmp_path, capsys):
    @task_wrapper
    def task(cfg):
        raise ConfigError("retrieval.k=0 must be a positive integer")

    with pytest.raises(SystemExit) as exc:
        task(compose_cfg("evaluate", ["logger=none"]))
    assert exc.value.code == 1
    assert capsys.readouterr().err.strip() == "error: retrieval.k=0 must be a positive integer"
    assert _status(tmp_path) == {
        "status": "failed",
        "experiment": "custom",
        "error": "retrieval.k=0 must be a positive integer",
    }


def test_expected_error_in_a_sweep_job_returns_no_metrics_so_the_sweep_goes_on(
    compose_cfg, tmp_path, monkeypatch
):
    monkeypatch.setattr(task_module, "in_multirun", lambda: True)

    @task_wrapper
    def task(cfg):
        raise ConfigError("bad value")

    cfg = compose_cfg("evaluate", ["logger=none"])
    assert task(cfg).metrics == {}
    from prodmatch.tasks.instantiators import objective

    assert math.isnan(objective({}, cfg.optimized_metric))  # Optuna records the trial as failed
    assert _status(tmp_path)["status"] == "failed"


def test_a_signal_stop_exits_128_plus_signal_and_is_recorded(compose_cfg, tmp_path, capsys):
    @task_wrapper
    def task(cfg):
        raise Interrupted(signal.SIGTERM)

    with pytest.raises(SystemExit) as exc:
        task(compose_cfg("evaluate", ["logger=none"]))
    assert exc.value.code == 128 + signal.SIGTERM
    assert _status(tmp_path)["status"] == "interrupted" and "SIGTERM" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback_and_is_recorded_as_failed(compose_cfg, tmp_path):
    @task_wrapper
    def task(cfg):
        raise ZeroDivisionError("division by zero")

    with pytest.raises(ZeroDivisionError):
        task(compose_cfg("evaluate", ["logger=none"]))
    assert _status(tmp_path)["error"] == "ZeroDivisionError: division by zero"


def test_reuse_needs_the_same_config_catalog_and_version(compose_cfg, tmp_path, caplog):
    caplog.set_level("INFO", logger="prodmatch")
    calls: list = []
    task = _writes_metrics(calls)
    cfg = compose_cfg("evaluate", ["logger=none", "resume=true", "experiment=title_tfidf"])
    task(cfg)
    wall_s = _status(tmp_path)["wall_s"]
    assert _status(tmp_path)["status"] == "ok" and wall_s >= 0
    task(cfg)
    assert len(calls) == 1, "a finished run with everything equal is reused"
    assert _status(tmp_path)["wall_s"] == wall_s, "a reused run keeps the wall time of the run that made it"
    # naming keys (the W&B group) do not matter
    with open_dict(cfg):
        cfg.group = "another_group"
    task(cfg)
    assert len(calls) == 1
    # another k is another run
    task(compose_cfg("evaluate", ["logger=none", "resume=true", "experiment=title_tfidf", "retrieval.k=5"]))
    assert len(calls) == 2 and "config changed" in caplog.text


def test_reuse_stops_when_the_catalog_changes(compose_cfg, tmp_path, tiny_data_dir, caplog):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir / "synthetic", data / "synthetic")
    caplog.set_level("INFO", logger="prodmatch")
    calls: list = []
    task = _writes_metrics(calls)
    overrides = ["logger=none", "resume=true", f"paths.data_dir={data}", "data.synthetic=null"]
    task(compose_cfg("evaluate", overrides))
    csv = data / "synthetic" / "comparable_data.csv"
    import pandas as pd

    pd.read_csv(csv, dtype=str, keep_default_na=False).head(60).to_csv(csv, index=False)  # cut the database
    task(compose_cfg("evaluate", overrides))
    assert len(calls) == 2 and "catalog changed" in caplog.text


def test_reuse_compares_the_config_as_composed_and_the_catalog_the_run_made(
    compose_cfg, tmp_path, tiny_data_dir
):
    """A task may settle config values in place (train.py's datamodule.modality=auto) and generate its catalog
    on first use: the same run again is still reused."""
    import shutil

    data = tmp_path / "data"
    calls: list = []

    @task_wrapper
    def task(cfg):
        calls.append(1)
        with open_dict(cfg):
            cfg.datamodule = {"modality": "image"}  # settled in place, as train.py does
        if not (data / "synthetic").exists():  # made on first use
            shutil.copytree(tiny_data_dir / "synthetic", data / "synthetic")
        (tmp_path / "metrics.json").write_text(json.dumps({"retrieval/acc@10": 0.5}))
        return Run(tmp_path, {"retrieval/acc@10": 0.5})

    overrides = ["logger=none", "resume=true", f"paths.data_dir={data}", "data.synthetic=null"]
    task(compose_cfg("evaluate", overrides))
    task(compose_cfg("evaluate", overrides))
    assert calls == [1]


def test_no_room_for_an_artifact_is_one_error_line_and_a_failed_status(compose_cfg, tmp_path, capsys):
    """A full disk (or quota) under the run dir: never a traceback or a signal death, and the job is recorded."""
    out = tmp_path / "run"
    started: list = []
    with small_disk(out, 512), filler(out) as fill_up:

        @task_wrapper
        def task(cfg):
            started.append((out / STATUS_FILE).is_file() and _status(out)["status"])
            fill_up()  # the disk fills up while the job runs
            atomic.write_json(out / "metrics.json", {"retrieval/acc@10": 0.5})

        with pytest.raises(SystemExit) as exc:
            task(compose_cfg("evaluate", ["logger=none", f"paths.output_dir={out}"]))
        assert exc.value.code == 1
        errors = capsys.readouterr().err.strip().splitlines()
        assert len(errors) == 1 and errors[0].startswith("error: custom: no space left on the disk")
        assert str(out / "metrics.json") in errors[0] and "paths.cache_dir" in errors[0]
        assert _status(out) == {
            "status": "failed",
            "experiment": "custom",
            "error": errors[0][len("error: ") :],
        }
        assert temporaries(out) == [] and not (out / "metrics.json").exists()
    assert started == ["running"]  # recorded as it started: a job killed outright is never taken for "ok"


def test_a_bad_data_identity_is_one_error_line(compose_cfg, tmp_path, capsys):
    calls: list = []
    with pytest.raises(SystemExit) as exc:
        _writes_metrics(calls)(compose_cfg("evaluate", ["logger=none", "data.identity=inode"]))
    assert exc.value.code == 1 and calls == []
    assert (
        capsys.readouterr().err.strip().startswith("error: data.identity='inode' is not one of stat, content")
    )


def test_content_identity_holds_for_the_whole_job(compose_cfg, tmp_path):
    from prodmatch.utils import hashing

    seen: list[str] = []

    @task_wrapper
    def task(cfg):
        seen.append(hashing._identity[-1])
        return {}

    task(compose_cfg("evaluate", ["logger=none", "data.identity=content"]))
    assert seen == ["content"] and hashing._identity == ["stat"]


def test_a_signal_during_a_sweep_job_ends_the_sweep_with_128_plus_signal(compose_cfg, tmp_path, monkeypatch):
    """Not a failed trial the sweeper goes on from: an interrupted Optuna sweep exits non-zero (see
    docs/RELIABILITY.md for its rerun)."""
    monkeypatch.setattr(task_module, "in_multirun", lambda: True)

    @task_wrapper
    def task(cfg):
        raise Interrupted(signal.SIGTERM)

    with pytest.raises(SystemExit) as exc:
        task(compose_cfg("evaluate", ["logger=none"]))
    assert exc.value.code == 128 + signal.SIGTERM
    assert _status(tmp_path)["status"] == "interrupted"
