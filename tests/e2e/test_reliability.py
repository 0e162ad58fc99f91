"""The guarantees of docs/RELIABILITY.md, each tested as a user meets it: at once, reused, resumed, stopped."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.run import cli_overrides, run_script, start_script, wandb_exit_codes

TFIDF = ["experiment=title_tfidf", "logger=csv"]
FAST_TRAIN = [
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=1",
    "datamodule.sampler.pairs_per_epoch=48",
    "datamodule.batch_size=16",
    "log_examples=0",
    "trainer.log_every_n_steps=1",
]


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_runs_started_together_get_their_own_dirs(tiny_data_dir, tmp_path):
    args = cli_overrides(tiny_data_dir, tmp_path)
    procs = [
        start_script("evaluate.py", [*args, *TFIDF, f"experiment_name=run{i}"], tmp_path) for i in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-2000:]
    runs = sorted((tmp_path / "logs" / "evaluate" / "runs").iterdir())
    assert len(runs) == 3
    names = {
        json.loads((r / "result" / "result.json").read_text())["config"]["experiment_name"] for r in runs
    }
    assert names == {"run0", "run1", "run2"}, "each run dir holds exactly its own run"


@pytest.mark.slow
def test_concurrent_cold_runs_give_the_serial_numbers(tmp_path):
    """Catalog generation, the local text model and the embedding cache, all cold, built by 3 runs at once."""
    at_once = tmp_path / "at_once"
    at_once.mkdir()
    args = [*cli_overrides(at_once / "data", at_once), "experiment=title", "logger=none"]
    procs = [start_script("evaluate.py", args, at_once) for _ in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=1200)
        assert proc.returncode == 0, err[-3000:]
    values = {_metrics(r)["retrieval/acc@10"] for r in (at_once / "logs" / "evaluate" / "runs").iterdir()}
    serial = tmp_path / "serial"
    serial.mkdir()
    proc = run_script(
        "evaluate.py", [*cli_overrides(serial / "data", serial), "experiment=title", "logger=none"], serial
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (serial / "logs" / "evaluate" / "runs").iterdir()
    assert values == {_metrics(run)["retrieval/acc@10"]}


def test_reuse_only_when_config_catalog_and_version_match(tiny_data_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir / "synthetic", data / "synthetic")
    run_dir = tmp_path / "fixed_run"
    args = [
        *cli_overrides(data, tmp_path),
        *TFIDF,
        "resume=true",
        "data.synthetic=null",
        f"hydra.run.dir={run_dir}",
    ]
    first = run_script("evaluate.py", args, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    before = _metrics(run_dir)
    again = run_script("evaluate.py", [*args, "group=another"], tmp_path)
    assert again.returncode == 0 and "reusing the finished run" in again.stdout + again.stderr
    csv = data / "synthetic" / "comparable_data.csv"
    pd.read_csv(csv, dtype=str, keep_default_na=False).head(60).to_csv(csv, index=False)  # a smaller database
    changed = run_script("evaluate.py", args, tmp_path)
    assert changed.returncode == 0, changed.stderr[-2000:]
    assert "catalog changed" in changed.stdout + changed.stderr
    assert _metrics(run_dir)["retrieval/acc@10"] != before["retrieval/acc@10"]


@pytest.mark.parametrize("k", [1, 5, 20])
def test_any_k_works_everywhere(tiny_data_dir, tmp_path, k):
    run_dir = tmp_path / "run"
    args = [*cli_overrides(tiny_data_dir, tmp_path), *TFIDF, f"retrieval.k={k}", f"hydra.run.dir={run_dir}"]
    proc = run_script("evaluate.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = _metrics(run_dir)
    assert {f"retrieval/acc@{k}", f"retrieval/sku_recall@{k}", f"retrieval/ann_recall@{k}"} <= set(metrics)
    assert f"Acc@{k}" in proc.stdout
    matches = pd.read_csv(run_dir / "matches.csv")
    assert matches.groupby("query_idx")["rank"].max().eq(k).all()


def test_a_failing_sweep_job_is_recorded_and_the_sweep_goes_on(tiny_data_dir, tmp_path):
    args = [*cli_overrides(tiny_data_dir, tmp_path, root=False), "experiment=title_tfidf"]
    proc = run_script("evaluate.py", ["-m", "retrieval.k=10,0,5", *args], tmp_path)
    assert proc.returncode == 1
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    jobs = {int(j.name.split("_", 1)[0]): j for j in sweep.iterdir() if j.is_dir()}  # <number>_<overrides>
    statuses = {num: json.loads((j / "job_status.json").read_text())["status"] for num, j in jobs.items()}
    assert statuses == {0: "ok", 1: "failed", 2: "ok"}, "the job after the failed one ran"
    assert (jobs[2] / "metrics.json").is_file() and "retrieval/acc@5" in _metrics(jobs[2])
    assert wandb_exit_codes(jobs[1]) == [1] and wandb_exit_codes(jobs[0]) == [0]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "retrieval.k=0" in errors[0]
    assert "1 of 3 jobs did not succeed" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_training_saves_last_ckpt_and_exits_non_zero(tiny_data_dir, tmp_path, signum):
    run_dir = tmp_path / "run"
    args = [
        *cli_overrides(tiny_data_dir, tmp_path),
        *FAST_TRAIN,
        "trainer.max_epochs=200",
        f"hydra.run.dir={run_dir}",
    ]
    proc = start_script("train.py", args, tmp_path)
    log = run_dir / "train.log"
    deadline = time.time() + 600
    while time.time() < deadline and not (log.is_file() and "before fit" in log.read_text()):
        time.sleep(1)
    time.sleep(3)  # inside the training epochs now
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert json.loads((run_dir / "job_status.json").read_text())["status"] == "interrupted"
    assert wandb_exit_codes(run_dir) == [1]
    assert [line for line in err.splitlines() if line.startswith("error:")][0].endswith("last.ckpt")


@pytest.mark.slow
def test_resume_from_a_checkpoint_is_the_same_run(tiny_data_dir, tmp_path):
    args = [*cli_overrides(tiny_data_dir, tmp_path), *FAST_TRAIN]
    straight = tmp_path / "straight"
    proc = run_script("train.py", [*args, "trainer.max_epochs=2", f"hydra.run.dir={straight}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    first = tmp_path / "first"
    proc = run_script("train.py", [*args, "trainer.max_epochs=1", f"hydra.run.dir={first}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before = _metrics(first)
    wandb_id = (first / "wandb_run_id").read_text()
    ckpt = first / "checkpoints" / "last.ckpt"
    proc = run_script("train.py", [*args, "trainer.max_epochs=2", f"ckpt_path={ckpt}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed = _metrics(first)  # the resumed run continued in its own run dir
    assert {k: v for k, v in resumed.items() if k.startswith("before_fit/")} == {
        k: v for k, v in before.items() if k.startswith("before_fit/")
    }, "before-fit figures are the original run's, not recomputed on the checkpoint"
    csv = pd.read_csv(first / "csv" / "metrics.csv")
    assert set(csv["epoch"].dropna().astype(int)) == {0, 1}, "the CSV log was continued"
    assert (first / "wandb_run_id").read_text() == wandb_id
    assert all(p.name.endswith(wandb_id.strip()) for p in (first / "wandb").glob("offline-run-*"))
    expected = _metrics(straight)
    for key in ("retrieval/acc@10", "retrieval/sku_mrr"):
        assert resumed[key] == pytest.approx(expected[key], abs=1e-6), key
