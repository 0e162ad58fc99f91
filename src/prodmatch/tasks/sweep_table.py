"""The comparison a sweep ends in: one row per job (the overrides that set it apart, its status and headline
metrics), sorted by the sweep's metric, written as ``sweep_summary.csv`` and ``.md`` in the sweep dir."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from prodmatch.layout import (
    ANN_RECALL_SAMPLE,
    MATCH,
    RETRIEVAL,
    STATUS_FILE,
    SWEEP_SUMMARY_FILE,
    SWEEP_SUMMARY_MD_FILE,
    WALL_KEY,
    acc_key,
    is_breakdown,
    stage_of,
)
from prodmatch.tasks.best_trial import Trial, collect_trials
from prodmatch.utils import atomic

DEFAULT_METRIC = acc_key(10)


def _status(job_dir: Path) -> tuple[str, float | None]:
    """(status, wall seconds) as the job recorded them; "not finished" when it recorded nothing."""
    try:
        data = json.loads((job_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return "not finished", None
    wall = data.get("wall_s")
    return str(data.get("status", "?")), float(wall) if isinstance(wall, (int, float)) else None


def headline(metrics: dict[str, float]) -> dict[str, float]:
    """The final retrieval and match figures (no breakdowns, no before-fit or per-epoch ones)."""
    return {
        k: v
        for k, v in metrics.items()
        if not is_breakdown(k)
        and stage_of(k)[0] == ""
        and k.startswith((RETRIEVAL, MATCH))
        and not k.endswith(ANN_RECALL_SAMPLE)
    }


def distinct_overrides(trials: list[Trial]) -> list[str]:
    """Each job's overrides that not every job shares (all of them for a single job)."""
    shared = set.intersection(*(set(t.overrides) for t in trials)) if len(trials) > 1 else set()
    return [" ".join(o for o in t.overrides if o not in shared) for t in trials]


def sweep_table(sweep_dir: Path, metric: str = DEFAULT_METRIC, direction: str = "maximize") -> pd.DataFrame:
    """One row per job of the sweep: job, overrides, status, ``metric``, the other headline metrics, wall time,
    job dir; the best first (jobs without the metric last)."""
    trials = collect_trials(Path(sweep_dir), metric)
    rows = []
    for trial, overrides in zip(trials, distinct_overrides(trials), strict=True):
        status, wall = _status(trial.job_dir)
        figures = headline(trial.metrics)
        row = {"job": trial.num, "overrides": overrides, "status": status, metric: trial.value}
        row.update({k: v for k, v in sorted(figures.items()) if k != metric})
        row.update({WALL_KEY: wall, "job_dir": trial.job_dir.name})
        rows.append(row)
    table = pd.DataFrame(rows, columns=None if rows else ["job", "overrides", "status", metric, "job_dir"])
    if table.empty:
        return table
    ascending = direction != "maximize"
    table = table.sort_values([metric, "job"], ascending=[ascending, True], na_position="last", kind="stable")
    front = ["job", "overrides", "status", metric]
    back = [WALL_KEY, "job_dir"]
    middle = [c for c in table.columns if c not in (*front, *back)]
    return table[front + middle + back].reset_index(drop=True)


def _cell(value: object, spec: str = ".4f") -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else format(value, spec)
    return "—" if value is None else str(value).replace("|", "\\|")


def markdown(table: pd.DataFrame) -> str:
    """The table as markdown (metrics as 4-decimal fractions, the wall time in seconds)."""
    header = [str(c) for c in table.columns]
    specs = [".1f" if c == WALL_KEY else ".4f" for c in header]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(_cell(v, spec) for v, spec in zip(row, specs, strict=True)) + " |"
        for row in table.itertuples(index=False)
    ]
    return "\n".join(lines) + "\n"


def write_sweep_summary(
    sweep_dir: Path, metric: str = DEFAULT_METRIC, direction: str = "maximize"
) -> tuple[pd.DataFrame, Path, Path]:
    """Write ``sweep_summary.csv`` and ``.md`` in the sweep dir; returns the table and the two paths."""
    table = sweep_table(sweep_dir, metric, direction)
    csv = atomic.write_text(Path(sweep_dir) / SWEEP_SUMMARY_FILE, table.to_csv(index=False))
    md = atomic.write_text(Path(sweep_dir) / SWEEP_SUMMARY_MD_FILE, markdown(table))
    return table, csv, md


def next_steps(sweep_dir: Path) -> str:
    """The commands that turn the sweep's runs into a report and a gallery."""
    return (
        f"report:  python -m prodmatch.reporting results --runs {sweep_dir} --out {sweep_dir}/report\n"
        f"gallery: python -m prodmatch.reporting gallery --runs {sweep_dir} --queries 0 1 2 "
        f"--out {sweep_dir}/gallery"
    )
