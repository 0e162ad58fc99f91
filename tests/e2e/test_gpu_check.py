"""`make gpu-check` without a GPU: one error line at once; its config and throughput wiring on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.run import REPO_ROOT, cli_overrides, run_script


def test_without_a_gpu_the_check_stops_with_one_error_line(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PY": sys.executable}
    proc = subprocess.run(
        [str(REPO_ROOT / "scripts" / "gpu_check.sh"), "--out", str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no CUDA GPU"), proc.stderr
    assert not (tmp_path / "out").exists(), "nothing is written before the GPU is found"


def test_gpu_bf16_trainer_config(compose_cfg):
    cfg = compose_cfg("train", ["trainer=gpu_bf16"])
    assert (cfg.trainer.accelerator, cfg.trainer.devices) == ("gpu", 1)
    assert cfg.trainer.precision == "bf16-mixed"
    assert cfg.trainer.benchmark is True


@pytest.mark.slow
def test_training_with_the_check_throughput_callback_writes_its_json(tiny_data_dir, tmp_path):
    """The same callback overrides the check passes, on the CPU and the tiny catalog."""
    out = tmp_path / "throughput.json"
    args = [
        *cli_overrides(tiny_data_dir, tmp_path),
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=3",
        "datamodule.sampler.pairs_per_epoch=48",
        "datamodule.batch_size=8",
        "callbacks.retrieval.before_fit=false",
        "logger=csv",
        "+callbacks.throughput._target_=prodmatch.callbacks.throughput.TrainThroughput",
        f"+callbacks.throughput.output_path={out}",
    ]
    proc = run_script("train.py", args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["steps"] == 3 and summary["images"] == 3 * 8 * 2  # pairs: two images each
    assert 0 <= summary["data_wait_share"] < 1 and summary["device"] == "cpu"


@pytest.mark.slow
def test_the_check_runs_end_to_end_on_the_cpu(tiny_data_dir, tmp_path):
    """Every step of the check (train, load the checkpoint, embed twice, report) on the tiny catalog."""
    out = tmp_path / "out"
    overrides = [a for a in cli_overrides(tiny_data_dir, tmp_path) if not a.startswith("num_workers")]
    args = [
        "--cpu-smoke",
        "--out",
        str(out),
        "--data-dir",
        str(tiny_data_dir),
        "--embed-catalog",
        "synthetic",
        "--workers",
        "0",
        "--embed-batch-size",
        "16",
        *overrides,
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "datamodule.sampler.pairs_per_epoch=32",
        "datamodule.batch_size=8",
        "callbacks.retrieval.before_fit=false",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gpu_check.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["train"]["steps"] == 2 and result["train"]["acc@10_after_fit"] is not None
    embed = result["embed"]
    assert embed["images"] > 0 and embed["fp32_images_per_s"] > 0
    assert embed["bf16_vs_fp32_min_cosine"] > 0.9  # the bf16 pass embeds the same images
    assert "GPU check on CPU (smoke run)" in (out / "gpu_check.md").read_text()
