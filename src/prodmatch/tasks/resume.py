"""Reuse of finished runs (`resume=true`): only when config, catalog contents and code version all match.

A finished job leaves ``done.json`` with three fingerprints. A later job in the same run dir reuses its metrics
only when all three are equal; otherwise the log says which one changed and the job recomputes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

import prodmatch
from prodmatch.layout import DONE_FILE, METRICS_FILE
from prodmatch.utils import atomic
from prodmatch.utils.hashing import file_hash, stable_hash, stats_hash

log = logging.getLogger("prodmatch")

# Keys that name, group or log a run without changing its results: a resumed job may differ in them.
NAMING_KEYS = (
    "group", "resume", "logger", "log_examples", "experiment_name", "paths", "hydra", "study", "optimized_metric",
)  # fmt: skip


def config_fingerprint(cfg: DictConfig) -> str:
    """Hash of the resolved config without the naming keys (the W&B group, logger settings, output paths)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in NAMING_KEYS:
        data.pop(key, None)
    return stable_hash(data)


def _images_stamp(csv: Path, image_root: str | None) -> str | None:
    """Size and mtime of every image a catalog CSV names (None when it names none or they cannot be read)."""
    if image_root is None:
        return None
    try:
        refs = pd.read_csv(csv, usecols=["img_ref"], dtype=str, keep_default_na=False)["img_ref"]
        root = Path(image_root)
        return stats_hash([root / ref for ref in refs if ref])
    except (OSError, ValueError):
        return "unreadable"


def catalog_fingerprint(data_cfg: DictConfig | dict[str, Any]) -> str | None:
    """Hash of both catalog CSVs' bytes and their images' stats (as the embedding cache keys them)."""
    parts = []
    for key in ("queries_csv", "database_csv"):
        csv = Path(str(data_cfg[key]))
        if not csv.is_file():
            return None
        parts.append((file_hash(csv), _images_stamp(csv, data_cfg.get("image_root"))))
    return stable_hash(parts)


def fingerprints(cfg: DictConfig, config: str | None = None) -> dict[str, str | None]:
    """The three things a finished run must share with this one to be reused (``config``: its fingerprint, when
    taken earlier)."""
    return {
        "config": config or config_fingerprint(cfg),
        "catalog": catalog_fingerprint(cfg.data),
        "version": prodmatch.__version__,
    }


def mark_done(cfg: DictConfig, config: str | None = None) -> None:
    """Record that this run dir holds finished results of this config, catalog and version.

    ``config``: the config's fingerprint taken when the run started, as composed (a task may settle values in
    place: train.py's datamodule.modality=auto); the catalog's is taken now, so a run that generated its
    catalog records it.
    """
    atomic.write_json(Path(cfg.paths.output_dir) / DONE_FILE, fingerprints(cfg, config))


def reusable_metrics(cfg: DictConfig) -> dict[str, Any] | None:
    """The metrics of an earlier finished run in this run dir when it is the same run; None otherwise (logged)."""
    out = Path(cfg.paths.output_dir)
    done, metrics = out / DONE_FILE, out / METRICS_FILE
    if not (done.is_file() and metrics.is_file()):
        return None
    try:
        before = json.loads(done.read_text())
    except ValueError:
        before = {}
    now = fingerprints(cfg)
    changed = [name for name in now if now[name] is None or before.get(name) != now[name]]
    if changed:
        log.info("%s: not reusing the run in %s: its %s changed; recomputing", cfg.experiment_name, out,
                 " and ".join(changed))  # fmt: skip
        return None
    log.info("%s: reusing the finished run in %s (same config, catalog contents and version %s)",
             cfg.experiment_name, out, now["version"])  # fmt: skip
    return json.loads(metrics.read_text())
