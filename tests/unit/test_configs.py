"""Every experiment config composes and instantiates with every entry point that accepts it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers.run import REPO_ROOT

EXPERIMENTS = sorted(p.stem for p in (REPO_ROOT / "conf" / "experiment").glob("*.yaml"))


def _trains(name: str) -> bool:
    """Experiments that choose a model to train belong to train.py; the others to evaluate.py / match.py."""
    text = (REPO_ROOT / "conf" / "experiment" / f"{name}.yaml").read_text()
    return "override /model" in text or name == "demo"


CASES = [("train", e) for e in EXPERIMENTS if _trains(e)]
CASES += [(task, e) for e in EXPERIMENTS if not _trains(e) for task in ("evaluate", "match")]


def test_every_experiment_has_an_entry_point():
    assert {e for _, e in CASES} == set(EXPERIMENTS)


@pytest.mark.parametrize(("task", "experiment"), CASES)
def test_experiment_composes_and_instantiates(compose_cfg, task, experiment):
    cfg = compose_cfg(task, [f"experiment={experiment}"])
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # every interpolation resolves
    if task == "train":
        from prodmatch.models.loading import instantiate_model
        from prodmatch.tasks.train import settle_modality

        settle_modality(cfg)
        model = instantiate_model(cfg.model, num_classes=3)
        assert model.model_config["_target_"] == cfg.model._target_
        instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
        for node in cfg.callbacks.values():
            instantiate(node, _partial_=True)  # the task adds the run's objects (catalogs, ...)
    # a trained module's encoders come from the module (train) or its checkpoint (ckpt_path), not from `encoders`
    provided = set(type(model).retrieval_encoder_names) if task == "train" else {"model", "model_posterior"}
    pipeline = instantiate(cfg.retrieval)
    assert pipeline.k == cfg.retrieval.k and pipeline.channels
    for ch in pipeline.channels:
        if ch.encoder not in provided:
            instantiate(cfg.encoders[ch.encoder])
    source = instantiate(cfg.data)
    assert Path(source.queries_csv).name == "company_data.csv"
    if cfg.study is not None:
        from prodmatch.reporting.study import TABLES

        assert cfg.study.table in TABLES and cfg.experiment_name == experiment


@pytest.mark.parametrize(("choice", "accelerator", "devices"), [("ddp", "gpu", -1), ("ddp_cpu", "cpu", 2)])
def test_embed_trainer_is_a_trainer_factory_for_the_predict_loop(compose_cfg, choice, accelerator, devices):
    cfg = compose_cfg("evaluate", ["experiment=img", f"embed_trainer={choice}"])
    factory = instantiate(cfg.embed_trainer)  # called by prodmatch.distributed with its shard writer
    assert factory.func.__name__ == "Trainer"
    assert factory.keywords["strategy"] == "ddp" and factory.keywords["precision"] == "32-true"
    assert (factory.keywords["accelerator"], factory.keywords["devices"]) == (accelerator, devices)
    assert compose_cfg("evaluate", ["experiment=img"]).get("embed_trainer") is None
