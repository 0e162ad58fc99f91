"""Every OmegaConf resolver and import-time filter of the project, registered in one place."""

from __future__ import annotations

import os
import secrets
import socket
import warnings
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from prodmatch.layout import CHECKPOINTS_DIR, HYDRA_CONFIG_FILE, HYDRA_DIR

_REGISTERED = False


def if_pretrained(when_pretrained: Any, when_local: Any, *, _root_: DictConfig) -> Any:
    """`${if_pretrained:a,b}`: a with pretrained weights, b for locally built random-init models."""
    return when_pretrained if _root_.pretrained else when_local


def wandb_offline() -> bool:
    """`${wandb_offline:}`: offline (files in the run dir, `wandb sync` later) unless WANDB_MODE asks for online."""
    return os.environ.get("WANDB_MODE", "offline").lower() not in ("online", "run")


def train_view(modality: str, text_view: str) -> str:
    """`${train_view:<modality>,<text_view>}`: the catalog view a training module embeds (image, or its text view)."""
    return "image" if modality == "image" else text_view


# Keys a resumed fit may change and still be the same run (besides the naming keys of prodmatch.tasks.resume):
# how long and where it trains, how it is evaluated along the way, where it starts from.
_RESUMABLE_KEYS = ("ckpt_path", "trainer", "callbacks", "num_workers", "device", "cache")


def _run_view(config: DictConfig | dict) -> dict[str, Any]:
    """What makes two training runs the same run: the config as composed (unresolved), without the keys a
    resumed fit may change."""
    from prodmatch.tasks.resume import NAMING_KEYS  # imported on use: reuse fingerprints load pandas

    data = OmegaConf.to_container(config, resolve=False) if isinstance(config, DictConfig) else dict(config)
    return {k: v for k, v in data.items() if k not in (*NAMING_KEYS, *_RESUMABLE_KEYS)}


def same_run(run: Path, root: DictConfig | None) -> bool:
    """Whether the run in ``run`` was composed with this config (``root``), up to what a resumed fit may change."""
    if root is None:
        return True  # called outside a config: nothing to compare
    try:
        stored = OmegaConf.load(run / HYDRA_DIR / HYDRA_CONFIG_FILE)
    except (OSError, ValueError, yaml.YAMLError):  # missing or torn: not provably the same run
        return False
    return _run_view(stored) == _run_view(root)


def resume_dir(task: str, ckpt_path: str | None, default: str, *, _root_: DictConfig | None = None) -> str:
    """`${resume_dir:<task>,<ckpt_path>,<default>}`: a training run resumed from its own checkpoint continues in
    its own run dir (same CSV log, W&B run and artifacts); every other run gets ``default``, a new dir. A fit
    started from another run's checkpoint with a different config (another model, data, seed, ...; the trainer
    settings, callbacks and naming keys may differ) is a new run: it gets ``default`` and records there where it
    was initialised from (``initialised_from.json``)."""
    if task == "train" and ckpt_path:
        ckpt = Path(str(ckpt_path)).expanduser().resolve()
        run = ckpt.parent.parent
        if ckpt.parent.name == CHECKPOINTS_DIR and (run / HYDRA_DIR).is_dir() and same_run(run, _root_):
            return str(run)
    return default


def run_token() -> str:
    """`${run_token:}`: unique among runs started at the same moment (pid is unique per host, plus randomness).

    Cached per process (``use_cache``), so every interpolation of one run sees the same token, and Hydra
    copies the cache into sweep jobs, so launchers that pickle the config keep it too.
    """
    host = socket.gethostname().encode()
    return f"{os.getpid():x}{secrets.token_hex(2)}{sum(host) % 256:02x}"


def register_resolvers() -> None:
    """Register the resolvers (idempotent); the entry points and the tests call it before composing."""
    global _REGISTERED
    if _REGISTERED:
        return
    OmegaConf.register_new_resolver("if_pretrained", if_pretrained, replace=True)
    OmegaConf.register_new_resolver("wandb_offline", wandb_offline, replace=True)
    OmegaConf.register_new_resolver("train_view", train_view, replace=True)
    OmegaConf.register_new_resolver("resume_dir", resume_dir, replace=True)
    OmegaConf.register_new_resolver("run_token", run_token, replace=True, use_cache=True)
    # Lightning's own internals trip this torch deprecation on every fit; it says nothing about the user's run.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    _REGISTERED = True
