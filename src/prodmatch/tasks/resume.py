"""Reuse of finished runs (`resume=true`): only when config, model weights, catalog contents and code version all
match.

A finished job leaves ``done.json`` with four fingerprints. A later job in the same run dir reuses its metrics
only when all four are equal; otherwise the log says which one changed and the job recomputes. Model files the
config names (``ckpt_path``, a local ``weights`` file, a local ``model_name_or_path`` folder) count by a digest of
their bytes, never by their path: a checkpoint retrained at the same path is another run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

import prodmatch
from prodmatch.layout import CHECKPOINTS_DIR, DONE_FILE, INIT_FILE, METRICS_FILE
from prodmatch.utils import atomic
from prodmatch.utils.hashing import file_hash, files_identity, stable_hash, weights_digest

log = logging.getLogger("prodmatch")

# Keys that name, group or log a run without changing its results: a resumed job may differ in them.
NAMING_KEYS = (
    "group", "resume", "logger", "log_examples", "experiment_name", "paths", "hydra", "study", "optimized_metric",
)  # fmt: skip
# Config keys whose value may be a local model file or folder: fingerprinted by its bytes.
MODEL_PATH_KEYS = ("ckpt_path", "weights", "model_name_or_path")
_PATH_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".safetensors")


def config_fingerprint(cfg: DictConfig) -> str:
    """Hash of the resolved config without the naming keys (the W&B group, logger settings, output paths)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in NAMING_KEYS:
        data.pop(key, None)
    return stable_hash(data)


def _local_model(value: Any, key: str) -> Path | None:
    """The local file or folder a model-path value names, if it names one that exists."""
    if not isinstance(value, str) or not value:
        return None
    looks_like_path = key == "ckpt_path" or any(c in value for c in "/\\~") or value.endswith(_PATH_SUFFIXES)
    path = Path(value).expanduser()
    return path if looks_like_path and path.exists() else None


def model_files(cfg: DictConfig) -> dict[str, Path]:
    """{dotted config key: local model file or folder} for every model path the resolved config names."""
    found: dict[str, Path] = {}

    def walk(node: Any, prefix: str) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            name = f"{prefix}{key}"
            path = _local_model(value, str(key)) if key in MODEL_PATH_KEYS else None
            if path is not None:
                found[name] = path
            else:
                walk(value, name + ".")

    data = OmegaConf.to_container(cfg, resolve=True)
    walk({k: v for k, v in data.items() if k not in NAMING_KEYS}, "")
    return found


def weights_fingerprint(cfg: DictConfig) -> str:
    """Hash of the digests of every local model file or folder the config names (see :func:`model_files`)."""
    digests = {}
    for key, path in model_files(cfg).items():
        try:
            digests[key] = weights_digest(path)
        except OSError:
            digests[key] = "unreadable"
    return stable_hash(digests)


def _images_stamp(csv: Path, image_root: str | None) -> str | None:
    """Identity of every image a catalog CSV names (None when it names none; "unreadable" when one cannot be
    read)."""
    if image_root is None:
        return None
    try:
        refs = pd.read_csv(csv, usecols=["img_ref"], dtype=str, keep_default_na=False)["img_ref"]
        root = Path(image_root)
        return files_identity([root / ref for ref in refs if ref])
    except (OSError, ValueError):
        return "unreadable"


def catalog_fingerprint(data_cfg: DictConfig | dict[str, Any]) -> str | None:
    """Hash of both catalog CSVs' bytes and their images' identity (as the embedding cache keys them)."""
    parts = []
    for key in ("queries_csv", "database_csv"):
        csv = Path(str(data_cfg[key]))
        if not csv.is_file():
            return None
        parts.append((file_hash(csv), _images_stamp(csv, data_cfg.get("image_root"))))
    return stable_hash(parts)


def start_fingerprints(cfg: DictConfig) -> dict[str, str]:
    """The fingerprints taken when a run starts: the config as composed (a task may settle values in place:
    train.py's datamodule.modality=auto) and the model weights it starts from (a resumed fit rewrites them)."""
    return {"config": config_fingerprint(cfg), "weights": weights_fingerprint(cfg)}


def fingerprints(cfg: DictConfig, started: dict[str, str] | None = None) -> dict[str, str | None]:
    """The four things a finished run must share with this one to be reused (``started``: those of
    :func:`start_fingerprints`, when taken earlier)."""
    return {
        **(started or start_fingerprints(cfg)),
        "catalog": catalog_fingerprint(cfg.data),
        "version": prodmatch.__version__,
    }


def mark_done(cfg: DictConfig, started: dict[str, str] | None = None) -> None:
    """Record that this run dir holds finished results of this config, weights, catalog and version.

    ``started``: :func:`start_fingerprints` taken when the run started; the catalog's is taken now, so a run that
    generated its catalog records it. So are the weights when a model file lies in this run dir (a fit resumed
    from its own ``last.ckpt`` rewrites it): a rerun starts from them as they are now.
    """
    done = fingerprints(cfg, started)
    out = Path(cfg.paths.output_dir).expanduser().resolve()
    if any(path.resolve().is_relative_to(out) for path in model_files(cfg).values()):
        done["weights"] = weights_fingerprint(cfg)
    atomic.write_json(out / DONE_FILE, done)


def _read_json(path: Path) -> Any:
    """A JSON file's contents; None when it is missing, empty or torn."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def reusable_metrics(cfg: DictConfig) -> dict[str, Any] | None:
    """The metrics of an earlier finished run in this run dir when it is the same run; None otherwise (logged)."""
    out = Path(cfg.paths.output_dir)
    done, metrics_path = out / DONE_FILE, out / METRICS_FILE
    if not (done.is_file() and metrics_path.is_file()):
        return None
    before = _read_json(done)
    before = before if isinstance(before, dict) else {}
    now = fingerprints(cfg)
    changed = [name for name in now if now[name] is None or before.get(name) != now[name]]
    if changed:
        log.info("%s: not reusing the run in %s: its %s changed; recomputing", cfg.experiment_name, out,
                 " and ".join(changed))  # fmt: skip
        return None
    metrics = _read_json(metrics_path)
    if not isinstance(metrics, dict):
        log.warning("%s: not reusing the run in %s: its %s is unreadable; recomputing", cfg.experiment_name, out,
                    METRICS_FILE)  # fmt: skip
        return None
    log.info("%s: reusing the finished run in %s (same config, weights, catalog contents and version %s)",
             cfg.experiment_name, out, now["version"])  # fmt: skip
    return metrics


def record_initialisation(cfg: DictConfig) -> None:
    """A training run started from a checkpoint outside its own run dir (another run's, whose config differs)
    records where it was initialised from: ``initialised_from.json`` (the checkpoint, its run dir, its digest)."""
    ckpt = cfg.get("ckpt_path")
    if cfg.get("task_name") != "train" or not ckpt:
        return
    path = Path(str(ckpt)).expanduser().resolve()
    out = Path(cfg.paths.output_dir).resolve()
    if path.parent.name == CHECKPOINTS_DIR and path.parent.parent == out or not path.is_file():
        return  # resumed in its own run dir (or no checkpoint: the fit says so)
    source = path.parent.parent if path.parent.name == CHECKPOINTS_DIR else None
    record = {
        "ckpt_path": str(path),
        "run_dir": str(source) if source else None,
        "weights": weights_digest(path),
    }
    atomic.write_json(out / INIT_FILE, record)
    log.info("%s: a new run in %s, initialised from %s (see %s)", cfg.experiment_name, out, path, INIT_FILE)
