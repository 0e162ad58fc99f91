"""Rebuild a trained module from a Lightning checkpoint written by train.py, for evaluate.py and match.py."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from prodmatch.encoders.base import Encoder
from prodmatch.errors import ConfigError
from prodmatch.models.base import ProdmatchModule

MODEL_CONFIG = "model.yaml"  # the resolved `model` config node, written by train.py into its run dir
_RUNTIME_ARGS = ("loss", "optimizer", "scheduler")  # constructor args that are objects, not hyper-parameters


def model_config_path(ckpt_path: Path) -> Path:
    """Where the training run that wrote `ckpt_path` (under <run>/checkpoints/) keeps its model config."""
    return ckpt_path.resolve().parent.parent / MODEL_CONFIG


def load_trained_module(ckpt_path: str | Path) -> ProdmatchModule:
    """The module class and its non-hyper-parameter args from the run's model.yaml, weights from the checkpoint."""
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise ConfigError(
            f"ckpt_path={ckpt_path}: no such checkpoint; pass a .ckpt from a train run's checkpoints/"
        )
    cfg_path = model_config_path(ckpt_path)
    if not cfg_path.is_file():
        raise ConfigError(
            f"ckpt_path={ckpt_path}: {cfg_path} is missing; evaluate checkpoints inside the train run dir "
            f"(<run>/checkpoints/*.ckpt) that wrote them"
        )
    model_cfg = OmegaConf.load(cfg_path)
    cls = get_class(model_cfg._target_)
    runtime = {k: instantiate(model_cfg[k]) for k in _RUNTIME_ARGS if model_cfg.get(k) is not None}
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    hparams = dict(checkpoint.get("hyper_parameters", {}))
    # Every weight comes from the checkpoint: don't fetch pretrained ones again where the architecture is
    # known without them (ResNet18; a locally built text model, whose dir holds its tokenizer).
    if cls.modality == "image" or hparams.get("local_model_dir"):
        hparams["pretrained"] = False
    # Only constructor arguments: modules also record run facts (e.g. the train view) in their hparams.
    accepted = inspect.signature(cls.__init__).parameters
    module = cls(**{k: v for k, v in {**hparams, **runtime}.items() if k in accepted})
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()


def load_trained_encoder(ckpt_path: str | Path) -> tuple[Encoder, str]:
    """The trained module's encoder and its modality ("image" or "text")."""
    module = load_trained_module(ckpt_path)
    return module.encoder, module.modality
