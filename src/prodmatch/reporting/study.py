"""The study's result tables as rows read from the experiment configs' ``study:`` blocks.

Each ``conf/experiment/<name>.yaml`` that is a row of a results table carries ``study: {table, order,
description, label, acc10}``; ``acc10`` is the original study's Acc@10 (percent, queries = company, database =
comparable) or null where the study has no figure. Adding or renaming an experiment means editing its YAML only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from prodmatch.errors import ConfigError
from prodmatch.retrieval.examples import SHOWCASE_QUERY_IDS
from prodmatch.utils.config import config_files, config_path

OFF_THE_SHELF = "off_the_shelf"
FINE_TUNED = "fine_tuned"
PRODUCT_LEVEL = "product_level"
TABLES: tuple[str, ...] = (OFF_THE_SHELF, FINE_TUNED, PRODUCT_LEVEL)
TABLE_TITLES: dict[str, str] = {
    OFF_THE_SHELF: "Off-the-shelf models",
    FINE_TUNED: "Fine-tuned models",
    PRODUCT_LEVEL: "Product level (query cards of unseen products; Acc@k is the category purity)",
}
TASKS = ("evaluate", "train")
# The task of a row whose study block names none: the study's tables are one task each.
DEFAULT_TASK = {OFF_THE_SHELF: "evaluate", FINE_TUNED: "train", PRODUCT_LEVEL: "train"}
# The study's figures are all at this cut; a run at another k is not compared with them.
STUDY_K = 10

# The study's visual check looked at these query rows (row positions in company_data.csv).
STUDY_QUERY_IDS: tuple[int, ...] = SHOWCASE_QUERY_IDS


@dataclass(frozen=True)
class Experiment:
    """One experiment name, its table, what it does, and the study's figure for it if the study has one."""

    name: str
    table: str
    description: str
    study_label: str | None = None
    study_acc10: float | None = None  # percent, as printed in the study
    order: int = 0  # position in its table
    task: str = "evaluate"  # the entry point that runs it: evaluate (off-the-shelf) or train


def study_row(name: str, block: Any, source: str = "") -> Experiment:
    """An :class:`Experiment` from one ``study:`` block; a malformed block is a one-line ConfigError."""
    where = source or name
    if not isinstance(block, dict):
        raise ConfigError(f"{where}: 'study' must be a mapping with table, order, description, label, acc10")
    table = block.get("table")
    if table not in TABLES:
        raise ConfigError(f"{where}: study.table={table!r} is not one of {', '.join(TABLES)}")
    task = block.get("task") or DEFAULT_TASK[table]
    if task not in TASKS:
        raise ConfigError(f"{where}: study.task={task!r} is not one of {', '.join(TASKS)}")
    try:
        acc = block.get("acc10")
        return Experiment(
            name=name,
            table=table,
            description=str(block.get("description") or ""),
            study_label=None if block.get("label") is None else str(block["label"]),
            study_acc10=None if acc is None else float(acc),
            order=int(block.get("order", 0)),
            task=task,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where}: study.order must be an integer and study.acc10 a number ({exc})"
        ) from exc


@functools.cache
def experiments(config_dir: str | None = None) -> tuple[Experiment, ...]:
    """Every experiment with a ``study:`` block, by table (off-the-shelf first), then by its order."""
    config_dir = config_dir or config_path()
    rows = []
    for name, text in config_files(config_dir, "experiment"):
        try:
            block = OmegaConf.to_container(OmegaConf.create(text)).get("study")
        except Exception as exc:  # YAML and OmegaConf raise many error classes
            raise ConfigError(f"experiment/{name}.yaml cannot be parsed ({exc}); fix the YAML") from exc
        if block is not None:
            rows.append(study_row(name, block, f"experiment/{name}.yaml"))
    rows.sort(key=lambda e: (TABLES.index(e.table), e.order, e.name))
    return tuple(rows)


def table_experiments(table: str, config_dir: str | None = None, task: str | None = None) -> list[str]:
    """Experiment names of one results table (those run by ``task`` when given), in the table's order."""
    return [e.name for e in experiments(config_dir) if e.table == table and (task is None or e.task == task)]
