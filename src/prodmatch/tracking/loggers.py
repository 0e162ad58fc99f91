"""The loggers of a run: W&B (offline by default, one run per job, resumed by its stored id) and CSV (appended)."""

from __future__ import annotations

import logging
import os
import secrets
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from prodmatch.layout import WANDB_ID_FILE
from prodmatch.utils import atomic

log = logging.getLogger("prodmatch")


def wandb_run_id(run_dir: str | Path) -> str:
    """This run dir's W&B run id: the stored one (a resumed job continues its run) or a new one, stored."""
    path = Path(run_dir) / WANDB_ID_FILE
    stored = path.read_text().strip() if path.is_file() else ""
    if stored:  # an empty file (a write cut short) gets a new id
        return stored
    run_id = "".join(
        secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8)
    )  # W&B's id form
    atomic.write_text(path, run_id + "\n")
    return run_id


def build_loggers(
    logger_cfg: DictConfig | Mapping[str, Any] | None, run_dir: str | Path | None = None
) -> list:
    """Instantiate the `logger` config group; with ``run_dir`` the W&B run is that dir's (resumed by its id)."""
    from hydra.utils import instantiate

    loggers = []
    for node in (logger_cfg or {}).values():
        if node is None:
            continue
        extra: dict[str, Any] = {}
        if str(node.get("_target_", "")).endswith("WandbLogger"):
            if os.environ.get("WANDB_MODE", "").lower() == "disabled":
                # An offline WandbLogger would switch WANDB_MODE to "dryrun" and write a run anyway.
                log.info("W&B logging is off (WANDB_MODE=disabled)")
                continue
            if run_dir is not None:
                extra = {"id": wandb_run_id(run_dir), "resume": "allow"}
        loggers.append(instantiate(node, **extra))
    return loggers


def log_metrics(loggers: Sequence[Any], metrics: Mapping[str, float], step: int | None = None) -> None:
    """Send flat metrics to every logger and flush the file-based ones."""
    for lg in loggers:
        lg.log_metrics(dict(metrics), step=step)
        lg.save()


def finish_wandb(failed: bool) -> None:
    """End this job's W&B run (marked failed on error) so the next job of a sweep starts its own."""
    import sys

    wandb = sys.modules.get("wandb")  # never import W&B just to learn that no run was started
    run = getattr(wandb, "run", None) if wandb is not None else None
    if run is None:
        return
    offline = run.settings.mode in ("offline", "dryrun")
    run_dir = Path(run.dir).parent
    wandb.finish(exit_code=1 if failed else 0)
    if offline:
        print(f"W&B run saved offline: upload with `wandb sync {run_dir}`")
