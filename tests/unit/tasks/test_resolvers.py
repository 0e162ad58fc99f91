from __future__ import annotations

import subprocess
import sys

from omegaconf import OmegaConf

from prodmatch.tasks.resolvers import resume_dir, run_token, train_view
from tests.helpers.run import REPO_ROOT


def test_run_tokens_differ_between_processes_started_together():
    code = "from prodmatch.tasks.resolvers import run_token; print(run_token())"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    tokens = {p.communicate()[0].strip() for p in procs}
    assert len(tokens) == 4 and run_token() not in tokens


def test_a_training_run_resumed_from_its_checkpoint_keeps_its_run_dir(tmp_path):
    run = tmp_path / "runs" / "r1"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    ckpt = str(run / "checkpoints" / "last.ckpt")
    assert resume_dir("train", ckpt, "new") == str(run.resolve())
    assert resume_dir("evaluate", ckpt, "new") == "new"  # evaluating a checkpoint is a run of its own
    assert resume_dir("train", None, "new") == "new"
    assert resume_dir("train", str(tmp_path / "elsewhere.ckpt"), "new") == "new"


def test_train_view():
    assert train_view("image", "title") == "image" and train_view("text", "title_cat") == "title_cat"


def _compose_train(overrides: list[str]):
    """train.yaml composed as the Hydra main composes it, its hydra node included."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from prodmatch.tasks.resolvers import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    GlobalHydra.instance().clear()
    return cfg


def test_another_runs_checkpoint_with_another_config_starts_a_new_run(tmp_path):
    """Resuming is for the same run (trainer settings may change); another config started from its checkpoint is a
    new run in a new dir, never one that writes into the other run's."""
    run = tmp_path / "runs" / "r1"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "last.ckpt"
    base = [f"paths.root_dir={tmp_path}", "model.optimizer.lr=0.001"]
    first = _compose_train([*base, "trainer.max_epochs=1"])
    (run / ".hydra").mkdir()
    OmegaConf.save(
        {k: v for k, v in first.items() if k != "hydra"}, run / ".hydra" / "config.yaml"
    )  # as Hydra
    resumed = _compose_train([*base, "trainer.max_epochs=3", "logger=csv", f"ckpt_path={ckpt}"])
    assert resumed.hydra.run.dir == str(run.resolve())
    other = _compose_train([f"paths.root_dir={tmp_path}", "model.optimizer.lr=0.01", f"ckpt_path={ckpt}"])
    assert other.hydra.run.dir != str(run.resolve())
    assert other.hydra.run.dir.startswith(str(tmp_path / "logs" / "train" / "runs"))
    (run / ".hydra" / "config.yaml").write_text("model: {")  # torn: not provably the same run
    assert _compose_train([*base, f"ckpt_path={ckpt}"]).hydra.run.dir != str(run.resolve())
