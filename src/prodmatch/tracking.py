"""Experiment tracking: the configured Lightning loggers (W&B, CSV), example tables, and the W&B run's end."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger, WandbLogger

from prodmatch.reporting.study import STUDY_QUERY_IDS
from prodmatch.retrieval.pipeline import RetrievalResult

log = logging.getLogger("prodmatch")

THUMBNAIL_PX = 128


def wandb_offline() -> bool:
    """W&B stays offline (files in the run dir, `wandb sync` later) unless WANDB_MODE asks for online."""
    return os.environ.get("WANDB_MODE", "offline").lower() not in ("online", "run")


def build_loggers(logger_cfg: DictConfig | Mapping[str, Any] | None) -> list[Logger]:
    """Instantiate every logger of the `logger` config group (an empty group means no tracking)."""
    if not logger_cfg:
        return []
    nodes = [node for node in logger_cfg.values() if node is not None]
    if os.environ.get("WANDB_MODE", "").lower() == "disabled":
        # Respect it: an offline WandbLogger would switch WANDB_MODE to "dryrun" and write a run anyway.
        log.info("W&B logging is off (WANDB_MODE=disabled)")
        nodes = [node for node in nodes if not str(node.get("_target_", "")).endswith("WandbLogger")]
    return [instantiate(node) for node in nodes]


def log_metrics(loggers: Sequence[Logger], metrics: Mapping[str, float], step: int | None = None) -> None:
    """Send flat metrics to every logger and flush the file-based ones."""
    for lg in loggers:
        lg.log_metrics(dict(metrics), step=step)
        lg.save()


def example_positions(n_queries: int, n: int, first: Sequence[int] = STUDY_QUERY_IDS) -> np.ndarray:
    """`n` query positions: the study's visually checked ids (clipped to the catalog), then evenly spread ones.

    Deterministic, so runs compare row by row, and the same queries as the HTML galleries.
    """
    if n <= 0 or n_queries == 0:
        return np.zeros(0, dtype=np.int64)
    chosen = list(dict.fromkeys(min(int(i), n_queries - 1) for i in first))[:n]
    spread = np.linspace(0, n_queries - 1, num=min(n, n_queries)).round().astype(np.int64)
    chosen += [int(i) for i in spread if int(i) not in chosen][: n - len(chosen)]
    return np.asarray(chosen, dtype=np.int64)


def _thumbnail(path: Path) -> Any:
    """A small RGB thumbnail of one card's image for a W&B table, or None when it can't be read."""
    from prodmatch.data.images import load_image
    from prodmatch.errors import ImageError

    try:
        img = load_image(path, size_hint=THUMBNAIL_PX)
    except ImageError as err:
        log.warning("example table: %s", err)
        return None
    img.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    return img


def example_rows(result: RetrievalResult, n: int) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows (one per query and rank) of the example-queries table; images as PIL or None."""
    qframe, dframe = result.queries.frame, result.database.frame
    q_sku = result.queries.skus
    d_sku = result.database.skus
    columns = [
        "query_idx",
        "query_title",
        "query_target",
        "rank",
        "db_idx",
        "db_title",
        "db_dealer",
        "db_price",
        "db_target",
        "score",
        "same_target",
        "same_sku",
    ]
    if result.uses_images:
        columns[1:1] = ["query_image"]
        columns.insert(columns.index("db_title"), "db_image")
        q_paths, d_paths = result.queries.image_paths(), result.database.image_paths()
    rows: list[list[Any]] = []
    for qpos in example_positions(len(result.queries), n):
        q_img = _thumbnail(q_paths[qpos]) if result.uses_images else None
        for rank, dpos in enumerate(result.ids[qpos], start=1):
            if dpos < 0:
                continue
            same_sku = bool(q_sku is not None and d_sku is not None and q_sku[qpos] == d_sku[dpos])
            row = [
                int(result.queries.row_ids[qpos]),
                qframe.at[qpos, "title"],
                qframe.at[qpos, "target"],
                rank,
                int(result.database.row_ids[dpos]),
                dframe.at[dpos, "title"],
                dframe.at[dpos, "dealer"],
                dframe.at[dpos, "price"],
                dframe.at[dpos, "target"],
                float(result.scores[qpos, rank - 1]),
                bool(qframe.at[qpos, "target"] == dframe.at[dpos, "target"]),
                same_sku,
            ]
            if result.uses_images:
                row[1:1] = [q_img]
                row.insert(columns.index("db_image"), _thumbnail(d_paths[dpos]))
            rows.append(row)
    return columns, rows


def log_examples(loggers: Sequence[Logger], result: RetrievalResult, n: int, key: str = "examples") -> None:
    """Log a W&B table of `n` example queries with their top-k (thumbnails for image runs)."""
    wandb_loggers = [lg for lg in loggers if isinstance(lg, WandbLogger)]
    if not wandb_loggers or n <= 0:
        return
    import wandb

    columns, rows = example_rows(result, n)
    image_cols = [i for i, c in enumerate(columns) if c.endswith("_image")]
    for row in rows:
        for i in image_cols:
            row[i] = wandb.Image(row[i]) if row[i] is not None else None
    for lg in wandb_loggers:
        lg.log_table(key=key, columns=columns, data=rows)


def finish_wandb(failed: bool) -> None:
    """End this job's W&B run (marked failed on error) so the next job of a sweep starts its own."""
    try:
        import wandb
    except ImportError:  # pragma: no cover - wandb is a dependency
        return
    run = wandb.run
    if run is None:
        return
    offline = run.settings.mode in ("offline", "dryrun")
    run_dir = Path(run.dir).parent
    wandb.finish(exit_code=1 if failed else 0)
    if offline:
        print(f"W&B run saved offline: upload with `wandb sync {run_dir}`")
