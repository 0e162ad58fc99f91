"""The W&B tables of a run: example queries with their top-k (thumbnails for image runs), built from a result,
and Acc@k per query target (with its bar chart), built from the metrics."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prodmatch.data.images import load_image
from prodmatch.errors import ImageError
from prodmatch.layout import acc_key, stage_of
from prodmatch.retrieval.examples import example_positions, examples
from prodmatch.retrieval.result import RetrievalResult

log = logging.getLogger("prodmatch")

THUMBNAIL_PX = 128
COLUMNS = ("query_idx", "query_title", "query_target", "rank", "db_idx", "db_title", "db_dealer", "db_price",
           "db_target", "score", "same_target", "same_sku")  # fmt: skip


def _thumbnail(path: Path) -> Any:
    """A small RGB thumbnail of one card's image, or None when it can't be read (logged)."""
    try:
        img = load_image(path, size_hint=THUMBNAIL_PX)
    except ImageError as err:
        log.warning("example table: %s", err)
        return None
    img.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    return img


def example_rows(result: RetrievalResult, n: int) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows (one per query and rank) of the example table; images as PIL or None."""
    q, d = result.queries.frame, result.database.frame
    columns = list(COLUMNS)
    if result.uses_images:
        columns[1:1] = ["query_image"]
        columns.insert(columns.index("db_title"), "db_image")
        q_paths, d_paths = result.queries.image_paths(), result.database.image_paths()
    rows: list[list[Any]] = []
    for ex in examples(result, example_positions(len(result.queries), n)):
        qp = ex.query_pos
        q_img = _thumbnail(q_paths[qp]) if result.uses_images else None
        for hit in ex.hits:
            dp = hit.db_pos
            row = [int(result.queries.row_ids[qp]), q.at[qp, "title"], q.at[qp, "target"], hit.rank,
                   int(result.database.row_ids[dp]), d.at[dp, "title"], d.at[dp, "dealer"], d.at[dp, "price"],
                   d.at[dp, "target"], hit.score, hit.same_target, bool(hit.same_sku)]  # fmt: skip
            if result.uses_images:
                row[1:1] = [q_img]
                row.insert(columns.index("db_image"), _thumbnail(d_paths[dp]))
            rows.append(row)
    return columns, rows


def log_examples(loggers: Sequence[Any], result: RetrievalResult, n: int, key: str = "examples") -> None:
    """Log a W&B table of ``n`` example queries with their top-k to every W&B logger."""
    wandb_loggers = _wandb_loggers(loggers) if n > 0 else []
    if not wandb_loggers:
        return
    import wandb

    columns, rows = example_rows(result, n)
    image_cols = [i for i, c in enumerate(columns) if c.endswith("_image")]
    for row in rows:
        for i in image_cols:
            row[i] = wandb.Image(row[i]) if row[i] is not None else None
    for lg in wandb_loggers:
        lg.log_table(key=key, columns=columns, data=rows)


def per_target_rows(metrics: Mapping[str, float], k: int) -> dict[str, list[list[Any]]]:
    """``{table key: [[target, Acc@k], ...]}`` of every stage and group that has per-target Acc@k, e.g.
    ``{"acc@10_per_target": ..., "before_fit/acc@10_per_target": ...}``; targets sorted."""
    tables: dict[str, list[list[Any]]] = {}
    for key, value in sorted(metrics.items()):
        stage, rest = stage_of(key)
        group, sep, tail = rest.rpartition(acc_key(k, ""))  # "" or "seen/" before "retrieval/acc@k/<target>"
        if not sep or not tail or "/" in tail:
            continue
        tables.setdefault(f"{stage}{group}acc@{k}_per_target", []).append([tail, float(value)])
    return tables


def log_per_target(loggers: Sequence[Any], metrics: Mapping[str, float], k: int) -> None:
    """Log Acc@k per query target as a W&B table and its bar chart to every W&B logger."""
    wandb_loggers = _wandb_loggers(loggers)
    tables = per_target_rows(metrics, k) if wandb_loggers else {}
    if not tables:
        return
    import wandb

    for key, rows in tables.items():
        table = wandb.Table(columns=["target", f"acc@{k}"], data=rows)
        chart = wandb.plot.bar(table, "target", f"acc@{k}", title=f"{key.replace('_', ' ')}")
        for lg in wandb_loggers:
            lg.experiment.log({key: table, f"{key}_chart": chart})


def _wandb_loggers(loggers: Sequence[Any]) -> list[Any]:
    """The W&B loggers among ``loggers``."""
    lightning = sys.modules.get("pytorch_lightning.loggers")
    if not loggers or lightning is None:
        return []  # without Lightning loaded there is no WandbLogger: never import it just to find that out
    return [lg for lg in loggers if isinstance(lg, lightning.WandbLogger)]
