"""The run artifacts of a retrieval result: metrics.json, matches.csv (contract) and the top-N match export."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prodmatch.layout import MATCHES_FILE, METRICS_FILE
from prodmatch.retrieval.protocol import SPLIT_COLUMN
from prodmatch.retrieval.result import RetrievalResult
from prodmatch.utils import atomic

MATCH_COLUMNS = (
    "query_idx",
    "rank",
    "db_idx",
    "score",
    "query_title",
    "db_title",
    "query_target",
    "db_target",
)
EXPORT_COLUMNS = ("title", "price", "dealer", "target", "cat_1", "cat_2", "cat_3", "img_ref", "sku")


def ranked_pairs(result: RetrievalResult, depth: int | None = None) -> tuple[np.ndarray, ...]:
    """Flat (query position, rank, database position, score) of the top-``depth`` matches, padding skipped."""
    ids = result.ids[:, : depth or result.k]
    scores = result.scores[:, : depth or result.k]
    q, k = ids.shape
    valid = (ids >= 0).ravel()
    qpos = np.repeat(np.arange(q), k)[valid]
    rank = np.tile(np.arange(1, k + 1), q)[valid]
    return qpos, rank, ids.ravel()[valid], scores.ravel()[valid].astype(np.float64)


def _column(frame: pd.DataFrame, name: str, pos: np.ndarray) -> np.ndarray:
    return frame[name].to_numpy(dtype=object)[pos]


def matches_frame(result: RetrievalResult) -> pd.DataFrame:
    """One row per (query, rank) of the top-k with CSV row positions and titles/targets of both sides."""
    qpos, rank, dpos, score = ranked_pairs(result)
    qframe, dframe = result.queries.frame, result.database.frame
    columns = {
        "query_idx": result.queries.row_ids[qpos],
        "rank": rank,
        "db_idx": result.database.row_ids[dpos],
        "score": np.round(score, 6),
        "query_title": _column(qframe, "title", qpos),
        "db_title": _column(dframe, "title", dpos),
        "query_target": _column(qframe, "target", qpos),
        "db_target": _column(dframe, "target", dpos),
    }
    if SPLIT_COLUMN in qframe.columns:  # product-level protocol: the product group of the query's SKU
        columns["query_split"] = _column(qframe, SPLIT_COLUMN, qpos)
    return pd.DataFrame(columns)


def export_frame(result: RetrievalResult, top_n: int | None = None) -> pd.DataFrame:
    """The business export: each query card's top-N with scores and both cards' key columns."""
    qpos, rank, dpos, score = ranked_pairs(result, top_n)
    qframe, dframe = result.queries.frame, result.database.frame
    columns: dict[str, np.ndarray] = {"query_idx": result.queries.row_ids[qpos]}
    for col in ("title", "price", "dealer", "sku"):
        if col in qframe:
            columns[f"query_{col}"] = _column(qframe, col, qpos)
    columns |= {"rank": rank, "score": np.round(score, 6), "db_idx": result.database.row_ids[dpos]}
    for col in EXPORT_COLUMNS:
        if col in dframe:
            columns[f"db_{col}"] = _column(dframe, col, dpos)
    return pd.DataFrame(columns)


def write_metrics(metrics: Mapping[str, Any], run_dir: str | Path) -> Path:
    """metrics.json: flat keys; non-finite values (e.g. SKU metrics without eligible queries) become null."""
    clean = {k: float(v) if math.isfinite(float(v)) else None for k, v in metrics.items()}
    return atomic.write_json(Path(run_dir) / METRICS_FILE, clean)


def write_matches(result: RetrievalResult, run_dir: str | Path) -> Path:
    """matches.csv (contract), written atomically."""
    path = Path(run_dir) / MATCHES_FILE
    with atomic.atomic_path(path) as tmp:
        matches_frame(result).to_csv(tmp, index=False)
    return path


def write_export(result: RetrievalResult, path: str | Path, top_n: int | None = None) -> pd.DataFrame:
    """The top-N export CSV, written atomically; returns the frame."""
    frame = export_frame(result, top_n)
    with atomic.atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return frame
