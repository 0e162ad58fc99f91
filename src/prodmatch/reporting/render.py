"""The results table as markdown and as a bar chart (ours beside the study's Acc@10)."""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import subprocess
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from prodmatch.reporting import results, study
from prodmatch.utils import atomic

log = logging.getLogger("prodmatch.reporting")

MISSING = "—"


def made_by() -> str:
    """Which code made a report, and when: the package version, the git commit of its checkout (with ``+dirty``
    when the tree has local changes) and the UTC time, so a committed report can be traced and regenerated."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("prodmatch")
    except PackageNotFoundError:
        pkg = "(not installed)"
    root = Path(__file__).resolve().parents[3]
    try:
        git = ["git", "-C", str(root)]
        commit = subprocess.run(
            [*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        sha = (
            commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
            if commit.returncode == 0
            else ""
        )
    except (OSError, subprocess.SubprocessError):
        sha = ""
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"made by prodmatch {pkg}, commit {sha or '(not a git checkout)'}, {when}"


def _fmt(values: pd.Series, spec: str = ".2f", signed: bool = False) -> np.ndarray:
    """Numbers as text with ``spec``; NaN -> MISSING."""
    fmt = "{:+" + spec + "}" if signed else "{:" + spec + "}"
    out = values.astype(float).map(lambda v: MISSING if math.isnan(v) else fmt.format(v))
    return out.to_numpy(dtype=object)


def _text(values: pd.Series) -> np.ndarray:
    """Text cells safe inside a markdown table row."""
    clean = values.astype(object).where(values.notna(), MISSING).map(str)
    return clean.str.replace("|", "\\|", regex=False).to_numpy(dtype=object)


def _ks(values: pd.Series) -> np.ndarray:
    return values.map(lambda k: MISSING if pd.isna(k) else str(int(k))).to_numpy(dtype=object)


def _md_table(header: Sequence[str], columns: Sequence[np.ndarray]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in zip(*columns, strict=True)]
    return lines


def _section_table(part: pd.DataFrame, k: str) -> list[str]:
    """One results section; with mixed k's (``k == "k"``) a column shows each run's k. A section no study row
    has a figure for (the product level) leaves out the study's columns."""
    ours = np.where(part["status"].eq("not run").to_numpy(), "not run", _fmt(part[results.ACC]))
    with_study = part[results.STUDY_ACC].notna().any() or part["study_label"].notna().any()
    header = ["experiment"] + (["study row"] if with_study else []) + ["description"]
    header += (["k"] if k == "k" else []) + [f"Acc@{k}"]
    header += ["study Acc@10", "Δ"] if with_study else []
    header += ["before fit"]
    columns = [_text("`" + part["experiment"] + "`")]
    columns += [_text(part["study_label"])] if with_study else []
    columns += [_text(part["description"])]
    columns += [_ks(part["k"])] if k == "k" else []
    columns += [ours]
    if with_study:
        columns += [_fmt(part[results.STUDY_ACC]), _fmt(part[results.DELTA], signed=True)]
    columns += [_fmt(part[results.BEFORE_ACC])]
    for m in [m for m in results.measure_columns(part) if part[m.column].notna().any()]:
        header.append(m.header.format(k=k))
        columns.append(_fmt(part[m.column], m.spec))
    return _md_table(header, columns)


def _targets_table(ran: pd.DataFrame, k: str) -> list[str]:
    targets = results.target_columns(ran)
    header = ["experiment"] + (["k"] if k == "k" else []) + [t[len(results.TARGET_PREFIX) :] for t in targets]
    cols = [_text("`" + ran["experiment"] + "`")] + ([_ks(ran["k"])] if k == "k" else [])
    cols += [_fmt(ran[t]) for t in targets]
    return [f"## Acc@{k} per target", "", *_md_table(header, cols), ""]


def results_markdown(
    table: pd.DataFrame, title: str, note: str, png_name: str | None = None, base: Path | None = None
) -> str:
    """The markdown report of a build_table() frame."""
    ran = table.loc[table["status"] == "ok"]
    k = results.k_label(ran["k"])
    lines = [f"# {title}", "", f"> {note}", ">", f"> {made_by()}", ""]
    lines += [
        f"Acc@{k} and recalls in percent (2 decimals, as in the study); MRR, mAP and F1 as fractions; "
        "wall min = the job's wall time in minutes (training and evaluation). "
        "*study Acc@10* is the original study's figure (real SportDoma data, queries = company, "
        f"database = comparable); Δ = ours − study in points, only for runs at k = {study.STUDY_K}; "
        f"{MISSING} = not measured.",
        "",
    ]
    if png_name:
        lines += [f"![Acc@{k}, ours vs study]({png_name})", ""]
    for section in study.TABLES:
        part = table.loc[table["table"] == section]
        if part.empty:
            continue
        lines += [f"## {study.TABLE_TITLES[section]}", ""]
        ok = part["status"].eq("ok")
        if ok.any():
            lines += [*_section_table(part.loc[ok], k), ""]
        if not ok.all():  # the study rows left out of this report: one line, not a table of "not run" rows
            lines += [
                "Not run in this report: " + ", ".join(f"`{e}`" for e in part.loc[~ok, "experiment"]) + ".",
                "",
            ]
    if results.target_columns(table) and not ran.empty:
        lines += _targets_table(ran, k)
    if not ran.empty:
        lines += ["## Runs", ""]
        # Relative to the report's folder, so a committed report names no machine-specific paths.
        dirs = [os.path.relpath(d, base) if base is not None else str(d) for d in ran["run_dir"]]
        lines += [f"- `{e}`: `{d}`" for e, d in zip(ran["experiment"], dirs, strict=True)]
        lines.append("")
    return "\n".join(lines)


def _bar_labels(rows: pd.DataFrame, mixed: bool) -> list[str]:
    table = rows["table"]
    tags = np.select([table.eq(study.FINE_TUNED), table.eq(study.PRODUCT_LEVEL)], ["FT", "product"], "OTS")
    if not mixed:
        return [f"{e}  [{t}]" for e, t in zip(rows["experiment"], tags, strict=True)]
    return [f"{e}  [{t}, k={k}]" for e, t, k in zip(rows["experiment"], tags, _ks(rows["k"]), strict=True)]


def plot_results(table: pd.DataFrame, out_png: Path, title: str, note: str) -> Path:
    """Horizontal bars of our Acc@k beside the study's Acc@10 for each row of the table (PNG)."""
    # Figure + Agg canvas directly: no pyplot, so no global backend state and no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ran = table["status"] == "ok"
    rows = table.loc[ran] if ran.any() else table  # the rows that ran (all, as "not run", when none did)
    rows = rows.iloc[::-1]  # barh draws bottom-up; keep the table's top row on top
    k = results.k_label(rows.loc[rows["status"] == "ok", "k"])
    y = np.arange(len(rows))
    height = 0.38
    fig = Figure(figsize=(10, 1.2 + 0.34 * max(len(rows), 1)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ours = rows[results.ACC].astype(float).fillna(0.0).to_numpy()
    theirs = rows[results.STUDY_ACC].astype(float).fillna(0.0).to_numpy()
    bars = ax.barh(y + height / 2, ours, height, label=f"ours (Acc@{k})", color="#1f77b4")
    ax.barh(y - height / 2, theirs, height, label="study (Acc@10)", color="#ff7f0e")
    ax.set_yticks(y, _bar_labels(rows, k == "k"), fontsize=8)
    not_run = rows["status"].eq("not run").to_numpy()
    ax.bar_label(
        bars, labels=np.where(not_run, "not run", _fmt(rows[results.ACC])).tolist(), fontsize=7, padding=2
    )
    n_fine_tuned = int(rows["table"].eq(study.FINE_TUNED).sum())
    if 0 < n_fine_tuned < len(rows):  # a rule between the two sections (fine-tuned rows sit at the bottom)
        ax.axhline(n_fine_tuned - 0.5, color="grey", lw=0.8, ls="--")
    ax.set_xlim(0, 110)
    ax.set_xlabel(f"Acc@{k}, %" if k != "k" else "Acc@k, % (each run at its own k)")
    ax.set_title(f"{title}\n{textwrap.fill(note, 90)}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: never covers a bar
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    with atomic.atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return out_png


def write_results(df: pd.DataFrame, out_md: Path, out_png: Path, title: str, note: str) -> pd.DataFrame:
    """Write the markdown table and the bar chart; ``df`` is a build_table() or a collect_runs() frame."""
    table = df if results.STUDY_ACC in df.columns else results.build_table(df)
    out_md, out_png = Path(out_md), Path(out_png)
    plot_results(table, out_png, title, note)
    png_name = Path(os.path.relpath(out_png, out_md.parent)).as_posix()
    atomic.write_text(out_md, results_markdown(table, title, note, png_name, base=out_md.parent))
    log.info(
        "wrote %s and %s (%d rows, %d run)", out_md, out_png, len(table), int(table["status"].eq("ok").sum())
    )
    return table
