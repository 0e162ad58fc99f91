"""Build a training module from config (train.py) and rebuild it from its checkpoint alone (evaluate/match).

train.py instantiates `model` through :func:`instantiate_model`, which keeps the resolved config on the module;
the module stores it in every checkpoint. :func:`load_trained_module` reads the checkpoint with
``weights_only=True`` (a checkpoint carrying code is refused, never run), rebuilds the module from the stored
config without fetching pretrained weights again (every weight comes from the checkpoint) and loads its state.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from prodmatch.errors import ConfigError, one_line
from prodmatch.models.base import MODEL_CONFIG_KEY, ModuleEncoder, ProdmatchModule
from prodmatch.utils.hashing import stable_hash, state_digest


def instantiate_model(model_cfg: DictConfig | dict[str, Any], **runtime: Any) -> ProdmatchModule:
    """The configured module, with ``runtime`` values (e.g. num_classes from the data) filled in where null."""
    from hydra.utils import instantiate

    # resolved in place: the node's interpolations (${pretrained}, ${data.image_size}) point at the root config
    config = (
        OmegaConf.to_container(model_cfg, resolve=True)
        if isinstance(model_cfg, DictConfig)
        else dict(model_cfg)
    )
    config.update({k: v for k, v in runtime.items() if k in config and config[k] is None})
    module = instantiate(config)
    module.model_config = config
    return module


# Targets that moved since a checkpoint stored its config: the stored config still rebuilds its module.
MOVED_TARGETS = {
    "prodmatch.encoders.image.build_resnet18": "prodmatch.backbones.resnet.build_resnet18",
    # the same parameters (backbone.*, projection.*) and arguments
    "prodmatch.models.nets.ImageEmbeddingNet": "prodmatch.backbones.resnet.ResNet18",
}


def _offline(config: dict[str, Any]) -> dict[str, Any]:
    """The config with pretrained weights switched off wherever the checkpoint supplies every weight, and moved
    targets at their current place."""
    out = dict(config)
    net = out.get("net")
    if isinstance(net, dict):
        if net.get("_target_") in MOVED_TARGETS:
            net = {**net, "_target_": MOVED_TARGETS[net["_target_"]]}
        out["net"] = {**net, "pretrained": False} if "pretrained" in net else net
    return out


def read_checkpoint(ckpt_path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, loaded weights-only; a file that needs code execution is refused."""
    import torch

    path = Path(ckpt_path)
    if not path.is_file():
        raise ConfigError(
            f"ckpt_path={path}: no such checkpoint; pass a .ckpt from a train run's checkpoints/"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ConfigError(
            f"ckpt_path={path}: refused, the file holds objects that would run code when loaded "
            f"({one_line(err, 160)}); only load checkpoints written by prodmatch's train.py"
        ) from err
    except (OSError, RuntimeError, EOFError) as err:
        raise ConfigError(f"ckpt_path={path}: not a readable checkpoint ({one_line(err, 160)})") from err


def load_trained_module(ckpt_path: str | Path) -> ProdmatchModule:
    """The trained module of a checkpoint written by train.py, in eval mode."""
    from hydra.utils import instantiate

    checkpoint = read_checkpoint(ckpt_path)
    config = checkpoint.get(MODEL_CONFIG_KEY)
    if not isinstance(config, dict):
        raise ConfigError(
            f"ckpt_path={ckpt_path}: the checkpoint holds no model config; it was not written by this "
            "version's train.py (retrain, or pass a checkpoint from a current run)"
        )
    hparams = checkpoint.get("hyper_parameters", {})
    local_dir = hparams.get("local_model_dir")  # a locally built text model: its dir holds the tokenizer
    extra = {"local_model_dir": local_dir, "pretrained": False} if local_dir else {}
    module = instantiate({**_offline(config), **extra})
    module.load_state_dict(checkpoint["state_dict"])
    module.model_config = config
    return module.eval()


class CheckpointEncoder(ModuleEncoder):
    """A loaded checkpoint's encoder. Unlike a module in training its weights are fixed, so its vectors are
    cached, keyed by the encoder's name and a digest of the weights and the module's hyper-parameters:
    evaluations of one checkpoint with other fusion weights, indexes or k (a sweep) embed the catalogs once."""

    def __init__(self, live: ModuleEncoder, name: str, digest: str) -> None:
        super().__init__(live.inner, live.module)
        module = live.module
        self._key = f"checkpoint|{module.modality}|{type(module).__name__}|{name}|{digest}"

    def cache_key(self) -> str | None:
        return self._key


def module_digest(module: torch.nn.Module) -> str:
    """Digest of the module's state dict (:func:`~prodmatch.utils.hashing.state_digest`) and its saved
    hyper-parameters."""
    hparams = dict(getattr(module, "hparams", {}) or {})
    return stable_hash(state_digest(module.state_dict()), hparams)[:32]


def load_trained_encoders(ckpt_path: str | Path) -> tuple[dict[str, CheckpointEncoder], str]:
    """The trained module's (cacheable) retrieval encoders by channel name (`model`, and the classifier's
    `model_posterior`) and its modality ("image" or "text")."""
    module = load_trained_module(ckpt_path)
    digest = module_digest(module)
    encoders = {
        name: CheckpointEncoder(live, name, digest) for name, live in module.retrieval_encoders().items()
    }
    return encoders, module.modality
