"""The results table: every study row and every collected run, ours beside the study's figure, at any k.

Each run is read at its own k (``result/result.json``): ``acc`` is its ``retrieval/acc@<k>``, and so on. The
study's figures are Acc@10, so Δ is given only for runs at k = 10. Product-level and SKU measures get a column
when at least one run has them (see :data:`MEASURES`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prodmatch.layout import BEFORE_FIT, SEEN, WALL_KEY, acc_key, match_key, retrieval_key
from prodmatch.reporting import study
from prodmatch.reporting.runs import collect_runs

__all__ = ["MEASURES", "Measure", "build_table", "collect_runs", "default_note"]

log = logging.getLogger("prodmatch.reporting")

ACC_KEY = acc_key("{k}")  # a template: each run's own k fills it
# Columns of build_table(): rates in percent (0..100) unless a Measure says otherwise.
ACC = "acc"
BEFORE_ACC = "before_fit_acc"
STUDY_ACC = "study_acc10"
DELTA = "delta"
TARGET_PREFIX = "acc/"


@dataclass(frozen=True)
class Measure:
    """An optional metric column: its metrics.json key, header (``{k}`` is each run's k), the factor from the
    stored value to the shown one, and the format."""

    column: str
    key: str
    header: str
    scale: float = 100.0  # rates are shown in percent
    spec: str = ".2f"


MEASURES: tuple[Measure, ...] = (
    Measure("sku_recall", retrieval_key("sku_recall@{k}"), "SKU R@{k}"),
    Measure("sku_full_recall", retrieval_key("sku_full_recall@{k}"), "SKU full R@{k}"),
    Measure("sku_map", retrieval_key("sku_map@{k}"), "SKU mAP@{k}", scale=1.0, spec=".3f"),
    Measure("sku_mrr", retrieval_key("sku_mrr"), "SKU MRR", scale=1.0, spec=".3f"),
    Measure("match_f1", match_key("f1"), "match F1", scale=1.0, spec=".3f"),
    # a trained row's own net before its first step (the untrained row of its family)
    Measure(
        "before_fit_sku_recall", retrieval_key("sku_recall@{k}", stage=BEFORE_FIT), "untrained SKU R@{k}"
    ),
    Measure(
        "before_fit_sku_mrr",
        retrieval_key("sku_mrr", stage=BEFORE_FIT),
        "untrained SKU MRR",
        scale=1.0,
        spec=".3f",
    ),
    # the product protocol's products seen in training (train) or tuning (val), beside the unseen ones above
    Measure("seen_sku_recall", retrieval_key("sku_recall@{k}", group=SEEN), "seen SKU R@{k}"),
    Measure("seen_sku_mrr", retrieval_key("sku_mrr", group=SEEN), "seen SKU MRR", scale=1.0, spec=".3f"),
    Measure("seen_match_f1", match_key("f1", group=SEEN), "seen match F1", scale=1.0, spec=".3f"),
    Measure("ann_recall", retrieval_key("ann_recall@{k}"), "ANN R@{k}"),
    Measure("wall_min", WALL_KEY, "wall min", scale=1 / 60, spec=".1f"),
)


def per_run(runs: pd.DataFrame, template: str) -> pd.Series:
    """Metric ``template`` (``{k}`` filled with each run's own k) per run, NaN where a run lacks it."""
    out = pd.Series(np.nan, index=runs.index, dtype=float)
    for k, rows in runs.groupby("k").groups.items():
        key = template.format(k=int(k))
        if key in runs.columns:
            out.loc[rows] = runs.loc[rows, key].astype(float)
    return out


def target_names(runs: pd.DataFrame) -> list[str]:
    """Targets with a per-target Acc@k in at least one run (at that run's k), sorted."""
    names: set[str] = set()
    for k, rows in runs.groupby("k").groups.items():
        prefix = acc_key(int(k), "")  # "retrieval/acc@<k>/": what every per-target key starts with
        cols = [c for c in runs.columns if str(c).startswith(prefix)]
        names |= {c[len(prefix) :] for c in cols if runs.loc[rows, c].notna().any()}
    return sorted(names)


def _ours(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One row per run with its k-resolved columns; also the optional measure columns present."""
    ours = pd.DataFrame(
        {
            "experiment": runs["experiment"].astype(str),
            "task": runs["task"].astype(str),
            "run_dir": runs["run_dir"].map(str),
            "k": runs["k"].astype(int),
            ACC: 100.0 * per_run(runs, ACC_KEY),
            BEFORE_ACC: 100.0 * per_run(runs, acc_key("{k}", stage=BEFORE_FIT)),
        }
    )
    for name in target_names(runs):
        ours[TARGET_PREFIX + name] = 100.0 * per_run(runs, acc_key("{k}", name))
    present = []
    for m in MEASURES:
        values = per_run(runs, m.key)
        if values.notna().any():
            ours[m.column] = values * m.scale
            present.append(m.column)
    return ours.drop_duplicates("experiment", keep="last"), present


def _catalogue(runs: pd.DataFrame) -> pd.DataFrame:
    """The study rows of the config dir, plus the study rows that runs of other experiments carry."""
    known = {e.name: e for e in study.experiments()}
    if "study" in runs.columns:
        for name, row in zip(runs["experiment"], runs["study"], strict=True):
            if row is not None and name not in known:
                known[name] = row
    rows = list(known.values())
    return pd.DataFrame(
        {
            "experiment": [e.name for e in rows],
            "table": [e.table for e in rows],
            "description": [e.description for e in rows],
            "study_label": [e.study_label for e in rows],
            STUDY_ACC: [np.nan if e.study_acc10 is None else e.study_acc10 for e in rows],
            "order": [float(e.order) for e in rows],
        }
    )


def build_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The results table of a collect_runs() frame: every study row with a figure, plus every run.

    Columns: experiment, table, description, study_label, task, run_dir, status ("ok" | "not run"), k, acc,
    acc/<target>..., the MEASURES present, before_fit_acc, study_acc10, delta (ours - study, points, k = 10
    only). Measures are shown as their ``scale`` gives: rates in percent, MRR, mAP and F1 as fractions, wall
    time in minutes.
    """
    ours, measures = _ours(runs)
    table = _catalogue(runs).merge(ours, on="experiment", how="outer", indicator=True)
    table = table.loc[table[STUDY_ACC].notna() | (table["_merge"] != "left_only")].copy()
    table["status"] = np.where(table["_merge"] == "left_only", "not run", "ok")
    unknown = table["table"].isna()  # experiments no study row names: placed by task, after the known ones
    table.loc[unknown, "table"] = np.where(
        table.loc[unknown, "task"] == "train", study.FINE_TUNED, study.OFF_THE_SHELF
    )
    table.loc[unknown, "description"] = "(no study row in its experiment config)"
    table["order"] = table["order"].fillna(np.inf)
    table[DELTA] = (table[ACC] - table[STUDY_ACC]).where(table["k"] == study.STUDY_K)
    table["_section"] = table["table"].map({t: i for i, t in enumerate(study.TABLES)})
    table = table.sort_values(["_section", "order", "experiment"], kind="stable")
    front = ["experiment", "table", "description", "study_label", "task", "run_dir", "status", "k", ACC]
    back = [*measures, BEFORE_ACC, STUDY_ACC, DELTA]
    return table[front + target_columns(ours) + back].reset_index(drop=True)


def target_columns(table: pd.DataFrame) -> list[str]:
    """The per-target Acc@k columns of a build_table() frame."""
    return [c for c in table.columns if str(c).startswith(TARGET_PREFIX)]


def measure_columns(table: pd.DataFrame) -> list[Measure]:
    """The optional measures a build_table() frame holds, in MEASURES order."""
    return [m for m in MEASURES if m.column in table.columns]


def default_note(runs: pd.DataFrame) -> str:
    """A note naming the data the runs used, for when the caller gives none."""
    sources = sorted(
        {
            f"{data or '?'} ({Path(csv).name or '?'})"
            for data, csv in zip(runs["data"], runs["queries_csv"], strict=True)
        }
    )
    ks = ", ".join(str(k) for k in sorted(set(runs["k"].astype(int))))
    return (
        f"Our figures: {len(runs)} runs at k = {ks}, queries from {', '.join(sources)}. "
        "Study figures: the original study's real data, Acc@10."
    )


def k_label(ks: Sequence[int] | pd.Series) -> str:
    """``"10"`` when every run shares one k, else ``"k"`` (the table then shows each run's k)."""
    unique = sorted({int(k) for k in ks if not pd.isna(k)})
    return str(unique[0]) if len(unique) == 1 else "k"
