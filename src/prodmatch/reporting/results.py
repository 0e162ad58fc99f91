"""Results table and summary chart from finished runs, beside the study's figures.

A run is any folder holding ``metrics.json`` (single runs under ``logs/<task>/runs/<timestamp>/``, sweep jobs
under ``multirun/<date>/<time>/<job>/``); its experiment name and task come from ``.hydra/config.yaml``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from prodmatch.errors import ConfigError, ProdmatchError
from prodmatch.reporting import study

log = logging.getLogger("prodmatch.reporting")

METRICS_FILE = "metrics.json"
CONFIG_FILE = Path(".hydra") / "config.yaml"
HYDRA_FILE = Path(".hydra") / "hydra.yaml"
PREFIX = "retrieval/"
BEFORE_FIT = "before_fit/"
MISSING = "—"

# Columns of build_table(): percent values (0..100) unless the name says otherwise.
ACC = "acc@10"
SKU_RECALL = "sku_recall@10"
SKU_MRR = "sku_mrr"  # a fraction (0..1), not a percentage
ANN_RECALL = "ann_recall@10"
BEFORE_ACC = "before_fit_acc@10"
STUDY_ACC = "study_acc@10"
DELTA = "delta"
TARGET_PREFIX = "acc@10/"

_HYDRA_INTERP = re.compile(r"\$\{hydra:([\w.\-]+)\}")


# --------------------------------------------------------------------------------------------- run configs
def load_run_config(run_dir: Path) -> DictConfig:
    """The run's composed config with ``${hydra:...}`` interpolations filled from ``.hydra/hydra.yaml``.

    Hydra saves the config unresolved; outside the Hydra job its ``hydra:`` resolver would read the *current*
    job (or be missing), so those references are substituted from the run's own hydra.yaml instead.
    """
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"{path}: no Hydra config; the run dir must hold .hydra/config.yaml as Hydra writes it"
        )
    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:  # yaml errors come in many classes
        raise ConfigError(f"{path}: cannot be parsed ({exc}); restore the file Hydra wrote") from exc
    hydra_path = run_dir / HYDRA_FILE
    if not isinstance(cfg, DictConfig) or not hydra_path.is_file():
        return cfg if isinstance(cfg, DictConfig) else OmegaConf.create({})
    hydra_cfg = OmegaConf.load(hydra_path)
    raw = OmegaConf.to_container(cfg, resolve=False)

    def fill(match: re.Match[str]) -> str:
        value = OmegaConf.select(hydra_cfg, f"hydra.{match.group(1)}", default=None)
        return match.group(0) if value is None else str(value)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return _HYDRA_INTERP.sub(fill, node) if isinstance(node, str) else node

    return OmegaConf.create(walk(raw))


def config_value(cfg: DictConfig, key: str, run_dir: Path, default: Any = None) -> Any:
    """``cfg[key]`` (dotted), resolved; a failing interpolation raises ConfigError naming key and run."""
    try:
        return OmegaConf.select(cfg, key, default=default)
    except Exception as exc:  # omegaconf raises several interpolation error classes
        raise ConfigError(
            f"{run_dir / CONFIG_FILE}: '{key}' cannot be resolved ({exc}); set the missing variable or "
            "pass the value explicitly"
        ) from exc


def runtime_cwd(run_dir: Path) -> Path | None:
    """The directory the run was launched from (relative config paths are relative to it), if recorded."""
    hydra_path = run_dir / HYDRA_FILE
    if not hydra_path.is_file():
        return None
    value = OmegaConf.select(OmegaConf.load(hydra_path), "hydra.runtime.cwd", default=None)
    return Path(str(value)) if value else None


# --------------------------------------------------------------------------------------------- collecting
def _read_run(metrics_path: Path) -> dict[str, Any]:
    """One row of collect_runs() for a run dir; raises ProdmatchError when the run cannot be used."""
    run_dir = metrics_path.parent
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProdmatchError(f"{metrics_path}: unreadable ({exc})") from exc
    if not isinstance(metrics, dict):
        raise ProdmatchError(f"{metrics_path}: not a JSON object of metric name -> value")
    cfg = load_run_config(run_dir)
    name = config_value(cfg, "experiment_name", run_dir)
    if not isinstance(name, str) or not name:
        raise ProdmatchError(f"{run_dir / CONFIG_FILE}: no experiment_name")
    row: dict[str, Any] = {
        "experiment": name,
        "task": str(config_value(cfg, "task_name", run_dir, default="") or ""),
        "run_dir": run_dir,
        "mtime": metrics_path.stat().st_mtime,
    }
    numeric = {
        k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    row.update(numeric)
    return row


def collect_runs(roots: Sequence[Path], latest_only: bool = True) -> pd.DataFrame:
    """One row per run found under ``roots`` (recursively): experiment, task, run_dir, mtime + metric keys.

    With ``latest_only`` the newest run (by metrics.json modification time) of each experiment wins.
    Unusable run dirs are skipped with a warning; finding none at all raises ProdmatchError.
    """
    roots = [Path(r) for r in roots]
    existing = [r for r in roots if r.is_dir()]
    for root in roots:
        if not root.is_dir():
            log.warning("runs root %s does not exist; skipped", root)
    rows: list[dict[str, Any]] = []
    skipped = 0
    for metrics_path in sorted({p for r in existing for p in r.rglob(METRICS_FILE)}):
        try:
            rows.append(_read_run(metrics_path))
        except ProdmatchError as exc:
            skipped += 1
            log.warning("skipping run %s: %s", metrics_path.parent, exc)
    where = ", ".join(str(r) for r in roots) or "(no roots given)"
    if not rows:
        raise ProdmatchError(
            f"no runs found under {where} (run dirs with metrics.json and .hydra/config.yaml; {skipped} skipped); "
            "run `python evaluate.py` / `python train.py` first or pass --runs with the right folders"
        )
    df = pd.DataFrame(rows).sort_values(["mtime", "run_dir"], key=_sort_key, kind="stable")
    df = df.reset_index(drop=True)
    if latest_only:
        df = _latest_per_experiment(df)
    log.info(
        "collected %d runs of %d experiments under %s (%d run dirs skipped)",
        len(df),
        df["experiment"].nunique(),
        where,
        skipped,
    )
    return df


def _sort_key(col: pd.Series) -> pd.Series:
    return col.map(str) if col.name == "run_dir" else col


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


# --------------------------------------------------------------------------------------------- the table
def _pct(df: pd.DataFrame, key: str) -> pd.Series:
    """Metric column ``key`` as percent, NaN where a run lacks it."""
    return df[key].astype(float) * 100.0 if key in df.columns else pd.Series(np.nan, index=df.index)


def _catalog_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "experiment": [e.name for e in study.EXPERIMENTS],
            "table": [e.table for e in study.EXPERIMENTS],
            "description": [e.description for e in study.EXPERIMENTS],
            "study_label": [e.study_label for e in study.EXPERIMENTS],
            STUDY_ACC: [np.nan if e.study_acc10 is None else e.study_acc10 for e in study.EXPERIMENTS],
            "order": np.arange(len(study.EXPERIMENTS)),
        }
    )


def build_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The results table: every study row plus every collected run, ours beside the study's figure.

    Columns: experiment, table, description, study_label, task, run_dir, status ("ok" | "not run"),
    acc@10, acc@10/<target>..., sku_recall@10, sku_mrr, ann_recall@10, before_fit_acc@10, study_acc@10, delta
    (ours - study, points). Rates are percent; sku_mrr is a fraction.
    """
    ours = pd.DataFrame(
        {
            "experiment": runs["experiment"].astype(str),
            "task": runs["task"].astype(str) if "task" in runs.columns else "",
            "run_dir": runs["run_dir"].map(str) if "run_dir" in runs.columns else "",
            ACC: _pct(runs, PREFIX + ACC),
            SKU_RECALL: _pct(runs, PREFIX + SKU_RECALL),
            SKU_MRR: runs[PREFIX + SKU_MRR].astype(float) if PREFIX + SKU_MRR in runs.columns else np.nan,
            ANN_RECALL: _pct(runs, PREFIX + ANN_RECALL),
            BEFORE_ACC: _pct(runs, BEFORE_FIT + PREFIX + ACC),
        }
    )
    target_keys = sorted(c for c in runs.columns if str(c).startswith(PREFIX + TARGET_PREFIX))
    for key in target_keys:
        ours[key[len(PREFIX) :]] = _pct(runs, key)
    ours = ours.drop_duplicates("experiment", keep="last")

    known = _catalog_frame()
    table = known.merge(ours, on="experiment", how="outer", indicator=True)
    wanted = table[STUDY_ACC].notna() | (table["_merge"] != "left_only")
    table = table.loc[wanted].copy()
    table["status"] = np.where(table["_merge"] == "left_only", "not run", "ok")
    # experiments the table does not know: placed by task, after the known ones, alphabetically
    unknown = table["order"].isna()
    table.loc[unknown, "table"] = np.where(
        table.loc[unknown, "task"] == "train", study.FINE_TUNED, study.OFF_THE_SHELF
    )
    table.loc[unknown, "description"] = "(not in the experiment table)"
    table["order"] = table["order"].fillna(len(study.EXPERIMENTS))
    table[DELTA] = table[ACC] - table[STUDY_ACC]
    table["_section"] = table["table"].map({t: i for i, t in enumerate(study.TABLES)})
    table = table.sort_values(["_section", "order", "experiment"], kind="stable")
    front = ["experiment", "table", "description", "study_label", "task", "run_dir", "status", ACC]
    targets = [k[len(PREFIX) :] for k in target_keys]
    back = [SKU_RECALL, SKU_MRR, ANN_RECALL, BEFORE_ACC, STUDY_ACC, DELTA]
    return table[front + targets + back].reset_index(drop=True)


def target_columns(table: pd.DataFrame) -> list[str]:
    """The per-target Acc@10 columns of a build_table() frame."""
    return [c for c in table.columns if str(c).startswith(TARGET_PREFIX)]


# --------------------------------------------------------------------------------------------- formatting
def _fmt(values: pd.Series, spec: str = ".2f", signed: bool = False) -> np.ndarray:
    """Numbers as text with ``spec``; NaN -> MISSING."""
    fmt = "{:+" + spec + "}" if signed else "{:" + spec + "}"
    out = values.astype(float).map(lambda v: MISSING if math.isnan(v) else fmt.format(v))
    return out.to_numpy(dtype=object)


def _text(values: pd.Series) -> np.ndarray:
    """Text cells safe inside a markdown table row."""
    clean = values.astype(object).where(values.notna(), MISSING).map(str)
    return clean.str.replace("|", "\\|", regex=False).to_numpy(dtype=object)


def _md_table(header: Sequence[str], columns: Sequence[np.ndarray]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in zip(*columns, strict=True)]
    return lines


def _section_table(part: pd.DataFrame) -> list[str]:
    not_run = part["status"].eq("not run").to_numpy()
    ours = np.where(not_run, "not run", _fmt(part[ACC]))
    header = ["experiment", "study row", "description", "Acc@10", "study Acc@10", "Δ", "before fit",
              "SKU R@10", "SKU MRR", "ANN R@10"]  # fmt: skip
    columns = [
        _text("`" + part["experiment"] + "`"),
        _text(part["study_label"]),
        _text(part["description"]),
        ours,
        _fmt(part[STUDY_ACC]),
        _fmt(part[DELTA], signed=True),
        _fmt(part[BEFORE_ACC]),
        _fmt(part[SKU_RECALL]),
        _fmt(part[SKU_MRR], ".3f"),
        _fmt(part[ANN_RECALL]),
    ]
    return _md_table(header, columns)


def results_markdown(
    table: pd.DataFrame, title: str, note: str, png_name: str | None = None, base: Path | None = None
) -> str:
    """The markdown report of a build_table() frame."""
    lines = [f"# {title}", "", f"> {note}", ""]
    lines += [
        "Acc@10 and recalls in percent (2 decimals, as in the study); SKU MRR as a fraction. "
        "*study Acc@10* is the original study's figure (real SportDoma data, queries = company, "
        f"database = comparable); Δ = ours − study in points; {MISSING} = not measured.",
        "",
    ]
    if png_name:
        lines += [f"![Acc@10, ours vs study]({png_name})", ""]
    for section in study.TABLES:
        part = table.loc[table["table"] == section]
        if part.empty:
            continue
        lines += [f"## {study.TABLE_TITLES[section]}", "", *_section_table(part), ""]
    ran = table.loc[table["status"] == "ok"]
    targets = target_columns(table)
    if targets and not ran.empty:
        header = ["experiment", *(t[len(TARGET_PREFIX) :] for t in targets)]
        cols = [_text("`" + ran["experiment"] + "`"), *(_fmt(ran[t]) for t in targets)]
        lines += ["## Acc@10 per target", "", *_md_table(header, cols), ""]
    if not ran.empty:
        lines += ["## Runs", ""]
        # Relative to the report's folder, so a committed report names no machine-specific paths.
        dirs = [os.path.relpath(d, base) if base is not None else str(d) for d in ran["run_dir"]]
        lines += [f"- `{e}`: `{d}`" for e, d in zip(ran["experiment"], dirs, strict=True)]
        lines.append("")
    return "\n".join(lines)


def plot_results(table: pd.DataFrame, out_png: Path, title: str, note: str) -> Path:
    """Horizontal bars of our Acc@10 beside the study's for each row of the table (PNG)."""
    # Figure + Agg canvas directly: no pyplot, so no global backend state and no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = table.iloc[::-1]  # barh draws bottom-up; keep the table's top row on top
    y = np.arange(len(rows))
    height = 0.38
    fig = Figure(figsize=(10, 1.2 + 0.34 * max(len(rows), 1)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ours = rows[ACC].astype(float).fillna(0.0).to_numpy()
    theirs = rows[STUDY_ACC].astype(float).fillna(0.0).to_numpy()
    bars = ax.barh(y + height / 2, ours, height, label="ours", color="#1f77b4")
    ax.barh(y - height / 2, theirs, height, label="study", color="#ff7f0e")
    labels = [
        f"{e}  [{'FT' if t == study.FINE_TUNED else 'OTS'}]"
        for e, t in zip(rows["experiment"], rows["table"], strict=True)
    ]
    ax.set_yticks(y, labels, fontsize=8)
    not_run = rows["status"].eq("not run").to_numpy()
    ax.bar_label(bars, labels=np.where(not_run, "not run", _fmt(rows[ACC])).tolist(), fontsize=7, padding=2)
    n_fine_tuned = int(rows["table"].eq(study.FINE_TUNED).sum())
    if 0 < n_fine_tuned < len(rows):  # a rule between the two sections (fine-tuned rows sit at the bottom)
        ax.axhline(n_fine_tuned - 0.5, color="grey", lw=0.8, ls="--")
    ax.set_xlim(0, 110)
    ax.set_xlabel("Acc@10, %")
    ax.set_title(f"{title}\n{textwrap.fill(note, 90)}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: never covers a bar
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    return out_png


def write_results(df: pd.DataFrame, out_md: Path, out_png: Path, title: str, note: str) -> pd.DataFrame:
    """Write the markdown table and the bar chart; ``df`` is a build_table() or a collect_runs() frame."""
    table = df if STUDY_ACC in df.columns else build_table(df)
    out_md, out_png = Path(out_md), Path(out_png)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    plot_results(table, out_png, title, note)
    png_name = Path(os.path.relpath(out_png, out_md.parent)).as_posix()
    out_md.write_text(results_markdown(table, title, note, png_name, base=out_md.parent), encoding="utf-8")
    log.info(
        "wrote %s and %s (%d rows, %d run)", out_md, out_png, len(table), int((table["status"] == "ok").sum())
    )
    return table


def default_note(runs: pd.DataFrame) -> str:
    """A note naming the data the runs used, for when the caller gives none."""
    sources: set[str] = set()
    for run_dir in runs["run_dir"].tolist():
        try:
            cfg = load_run_config(Path(run_dir))
            sources.add(str(config_value(cfg, "data.queries_csv", Path(run_dir), default="?")))
        except ProdmatchError:
            sources.add("?")
    data = ", ".join(sorted(sources))
    return (
        f"Our figures: {len(runs)} runs, queries from {data}. Study figures: the original study's real data."
    )
