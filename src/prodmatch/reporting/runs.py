"""Finished runs as rows: ``metrics.json`` plus the saved retrieval result's k and resolved config.

A run is any folder holding ``metrics.json`` and ``result/result.json`` (single runs under
``logs/<task>/runs/<timestamp>/``, sweep jobs under ``multirun/<date>/<time>/<job>/``). Its experiment name,
task, data and study row come from the config the result was saved with, already resolved by the run itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from prodmatch.errors import ConfigError, ProdmatchError
from prodmatch.layout import METRICS_FILE, RESULT_DIR, RESULT_META_FILE, STATUS_FILE, WALL_KEY
from prodmatch.reporting.study import Experiment, study_row

log = logging.getLogger("prodmatch.reporting")

RESULT_FILE = Path(RESULT_DIR) / RESULT_META_FILE
# Columns every collect_runs() row has besides the numeric metric keys.
RUN_COLUMNS = ("experiment", "task", "run_dir", "mtime", "k", "data", "queries_csv", "study")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProdmatchError(f"{path}: not found; the run did not finish (rerun it)") from exc
    except (OSError, ValueError) as exc:
        raise ProdmatchError(f"{path}: unreadable ({exc}); rerun the run that wrote it") from exc


def _study(name: str, block: Any, run_dir: Path) -> Experiment | None:
    """The run's own study row (it places experiments the config dir does not list); None when absent or bad."""
    if not block:
        return None
    try:
        return study_row(name, block, str(run_dir / RESULT_FILE))
    except ConfigError as exc:
        log.warning("%s; the run is reported without its study row", exc)
        return None


def read_run(run_dir: Path) -> dict[str, Any]:
    """One collect_runs() row for a run dir; raises ProdmatchError when the run cannot be used."""
    run_dir = Path(run_dir)
    metrics = _read_json(run_dir / METRICS_FILE)
    meta = _read_json(run_dir / RESULT_FILE)
    if not isinstance(metrics, dict) or not isinstance(meta, dict):
        raise ProdmatchError(f"{run_dir}: metrics.json and {RESULT_FILE} must each hold a JSON object")
    config = meta.get("config") or {}
    name = config.get("experiment_name") or run_dir.name
    study = _study(str(name), config.get("study"), run_dir)
    row: dict[str, Any] = {
        "experiment": str(name),
        "task": str(config.get("task_name") or ""),
        "run_dir": run_dir,
        "mtime": (run_dir / METRICS_FILE).stat().st_mtime,
        "k": int(meta["k"]),
        "data": str((config.get("data") or {}).get("name") or ""),
        "queries_csv": str(((meta.get("catalogs") or {}).get("queries") or {}).get("csv") or ""),
        "study": study,
    }
    row.update(
        {
            key: float(value)
            for key, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
    )
    status = _read_json(run_dir / STATUS_FILE) if (run_dir / STATUS_FILE).is_file() else {}
    if isinstance(status, dict) and isinstance(status.get("wall_s"), (int, float)):
        row[WALL_KEY] = float(status["wall_s"])
    return row


def collect_runs(roots: Sequence[Path], latest_only: bool = True) -> pd.DataFrame:
    """One row per run found under ``roots`` (recursively): RUN_COLUMNS + every numeric metric key.

    With ``latest_only`` the newest run (by metrics.json modification time) of each experiment wins.
    Unusable run dirs are skipped with a warning; finding none at all raises ProdmatchError.
    """
    roots = [Path(r) for r in roots]
    for root in roots:
        if not root.is_dir():
            log.warning("runs root %s does not exist; skipped", root)
    found = sorted({p.parent for r in roots if r.is_dir() for p in r.rglob(METRICS_FILE)})
    rows: list[dict[str, Any]] = []
    for run_dir in found:
        try:
            rows.append(read_run(run_dir))
        except (ProdmatchError, KeyError) as exc:
            log.warning("skipping run %s: %s", run_dir, exc)
    where = ", ".join(str(r) for r in roots) or "(no roots given)"
    if not rows:
        raise ProdmatchError(
            f"no runs found under {where} (run dirs with metrics.json and {RESULT_FILE}; "
            f"{len(found)} skipped); run `python evaluate.py` / `python train.py` first or pass --runs"
        )
    df = pd.DataFrame(rows)
    df = df.assign(_dir=df["run_dir"].map(str)).sort_values(["mtime", "_dir"], kind="stable")
    df = df.drop(columns="_dir").reset_index(drop=True)
    if latest_only:
        df = _latest_per_experiment(df)
    log.info(
        "collected %d runs of %d experiments under %s (%d run dirs skipped)",
        len(df), df["experiment"].nunique(), where, len(found) - len(rows),
    )  # fmt: skip
    return df


def _latest_per_experiment(df: pd.DataFrame) -> pd.DataFrame:
    """Keep each experiment's newest run (df is sorted oldest first) and log what was dropped."""
    dup = df.duplicated("experiment", keep="last")
    if dup.any():
        counts = df.loc[dup, "experiment"].value_counts().sort_index()
        detail = ", ".join(f"{name} ×{n}" for name, n in counts.items())
        log.info(
            "%d older duplicate runs dropped, the latest run per experiment wins (%s)", int(dup.sum()), detail
        )
    return df.loc[~dup].reset_index(drop=True)
