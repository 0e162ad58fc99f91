"""Sweeps past one process: an Optuna study (hparams_search) and submitit-launched jobs, on the tiny catalog."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers.run import REPO_ROOT, cli_overrides, run_script, wandb_exit_codes

# A few steps only: these tests check the sweep machinery, not learning.
FAST = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "datamodule.sampler.pairs_per_epoch=32",
    "log_examples=0",
    "callbacks.retrieval.before_fit=false",
]
# With the study's seed, this choice gives trial 1 (of 0, 1, 2) the batch size 0, a config error.
FAILING_CHOICE = "datamodule.batch_size=choice(16,0,24)"


def _hparams_search_arg() -> str:
    """`hparams_search=...` once train.yaml lists the group in its defaults, `+hparams_search=...` before."""
    defaults = OmegaConf.to_container(OmegaConf.load(REPO_ROOT / "conf" / "train.yaml").defaults)
    listed = any(isinstance(d, dict) and "hparams_search" in d for d in defaults)
    return ("" if listed else "+") + "hparams_search=demo_optuna"


def _job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")), key=_num)


def _num(job: Path) -> str:
    """A job dir's number (its name is `<number>_<overrides>`)."""
    return job.name.split("_", 1)[0]


def _overrides(job: Path) -> list[str]:
    return [str(o) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml")]


def _wandb_group(job: Path) -> str:
    debug = next(job.glob("wandb/offline-run-*/logs/debug.log")).read_text()
    return re.search(r"'group': '([^']+)'", debug).group(1)


@pytest.fixture(scope="module")
def optuna_study(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A 3-trial study of demo_optuna whose second trial gets batch size 0; (process, sweep dir)."""
    root = tmp_path_factory.mktemp("optuna")
    sweep_dir = root / "study"
    args = [
        _hparams_search_arg(),
        "hydra.sweeper.n_trials=3",
        FAILING_CHOICE,
        f"hydra.sweep.dir={sweep_dir}",
        *cli_overrides(tiny_data_dir, root, root=False),
        *FAST,
    ]
    return run_script("train.py", args, cwd=root), sweep_dir


@pytest.mark.slow
def test_study_records_the_failed_trial_goes_on_and_reports_the_best(optuna_study):
    proc, sweep_dir = optuna_study
    jobs = _job_dirs(sweep_dir)
    assert [_num(j) for j in jobs] == ["0", "1", "2"], proc.stderr[-3000:]
    failed = [j for j in jobs if "datamodule.batch_size=0" in _overrides(j)]
    assert [_num(j) for j in failed] == ["1"]
    assert not (failed[0] / "metrics.json").exists()
    assert wandb_exit_codes(failed[0]) == [1]
    # Optuna told the failure, and the trials after it still ran.
    assert proc.stdout.count("Failed experiment") == 1
    finished = [j for j in jobs if j not in failed]
    values = {j.name: json.loads((j / "metrics.json").read_text())["retrieval/acc@10"] for j in finished}

    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert results.best_value == pytest.approx(max(values.values()))
    best = OmegaConf.load(sweep_dir / "best_trial.yaml")
    assert best.value == pytest.approx(results.best_value)
    assert best.trials == {"total": 3, "finished": 2, "failed": 1}
    best_job = sweep_dir / best.job_dir
    assert values[best_job.name] == pytest.approx(best.value)
    assert {f"{k}={v}" for k, v in results.best_params.items()} <= set(best.overrides)
    assert best.metrics == json.loads((best_job / "metrics.json").read_text())
    assert best.config.model._target_ == "prodmatch.models.siamese.SiameseModule"
    # ... and the best trial's metrics are printed.
    assert f"best trial of 3 (2 finished, 1 failed): job {best.job_num}" in proc.stdout
    assert re.search(rf"retrieval/acc@10\s+{best.value:.4f}", proc.stdout)


@pytest.mark.slow
def test_study_failed_trial_follows_the_sweep_failure_rules(optuna_study):
    proc, sweep_dir = optuna_study
    statuses = {_num(j): json.loads((j / "job_status.json").read_text()) for j in _job_dirs(sweep_dir)}
    assert {name: s["status"] for name, s in statuses.items()} == {"0": "ok", "1": "failed", "2": "ok"}
    assert "batch_size" in statuses["1"]["error"] and "\n" not in statuses["1"]["error"]
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr


def test_readme_hparams_search_command_composes():
    from prodmatch.tasks.resolvers import register_resolvers

    register_resolvers()
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", ["hparams_search=demo_optuna"], return_hydra_config=True)
    assert cfg.optimized_metric == "retrieval/acc@10"
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.sampler.seed == 42
    assert "best_trial" in cfg.hydra.callbacks


def _submitit_sweep(data_dir: Path, root: Path, sweep: str, extra: list[str]):
    args = [
        "-m",
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={root / sweep}",
        *cli_overrides(data_dir, root, root=False),
        *FAST,
        *extra,
    ]
    return run_script("train.py", args, cwd=root)


@pytest.mark.slow
def test_submitit_local_runs_each_job_with_its_metrics_one_group_and_resumes(tiny_data_dir, tmp_path):
    models = "model=resnet_contrastive,resnet_cos"
    proc = _submitit_sweep(tiny_data_dir, tmp_path, "sweep", [models, "resume=true"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep_dir = tmp_path / "sweep"
    jobs = _job_dirs(sweep_dir)
    assert [_num(j) for j in jobs] == ["0", "1"]
    for job in jobs:
        assert 0 <= json.loads((job / "metrics.json").read_text())["retrieval/acc@10"] <= 1
        assert wandb_exit_codes(job) == [0]
    # The default, timestamped group is resolved once for the sweep, though each job runs in its own process.
    groups = {_wandb_group(j) for j in jobs}
    assert len(groups) == 1
    # submitit's pickles and logs stay inside the sweep dir.
    assert list((sweep_dir / ".submitit").glob("*/*_log.out"))
    assert not (tmp_path / ".submitit").exists()

    # The same sweep again (in the same group) reuses the finished jobs instead of retraining them.
    stamps = [(j / "metrics.json").stat().st_mtime_ns for j in jobs]
    again = _submitit_sweep(
        tiny_data_dir, tmp_path, "sweep", [models, "resume=true", f"group={groups.pop()}"]
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert [(j / "metrics.json").stat().st_mtime_ns for j in jobs] == stamps


@pytest.mark.slow
def test_submitit_local_failing_job_is_recorded_and_the_other_finishes(tiny_data_dir, tmp_path):
    proc = _submitit_sweep(tiny_data_dir, tmp_path, "sweep", ["datamodule.batch_size=16,0"])
    ok, failed = _job_dirs(tmp_path / "sweep")
    assert json.loads((ok / "metrics.json").read_text())["retrieval/acc@10"] >= 0
    assert json.loads((ok / "job_status.json").read_text())["status"] == "ok"
    assert json.loads((failed / "job_status.json").read_text())["status"] == "failed"
    assert wandb_exit_codes(failed) == [1]
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr


class _Submitted(Exception):
    """Stops the launcher where it would call sbatch."""


def test_slurm_preset_sets_partition_gpus_time_and_array_parallelism(tmp_path, monkeypatch):
    """The real plugin turns `hydra/launcher=slurm` into the sbatch script (sbatch itself is not called)."""
    from prodmatch.tasks.resolvers import register_resolvers

    register_resolvers()
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from submitit.slurm.slurm import SlurmExecutor

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\n")  # submitit looks for srun to believe it is on a cluster
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    scripts: list[str] = []

    def capture(self, command):
        scripts.append(self._make_submission_file_text(command, "uid"))
        raise _Submitted

    monkeypatch.setattr(SlurmExecutor, "_submit_command", capture)
    overrides = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", f"hydra.sweep.dir={tmp_path}/sweep"]
    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides, return_hydra_config=True)
    node = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    node.update(submitit_folder=f"{tmp_path}/sweep/.submitit/%j", name="train")
    launcher = instantiate(node)
    launcher.config = cfg
    with pytest.raises(_Submitted):
        launcher.launch([[f"seed={i}"] for i in range(10)], initial_job_idx=0)
    (script,) = scripts
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --time=120",
        "#SBATCH --mem=32GB",
        "#SBATCH --array=0-9%8",  # 10 jobs, at most 8 at once
    ):
        assert line in script, script
    assert f"{tmp_path}/sweep/.submitit/" in script
