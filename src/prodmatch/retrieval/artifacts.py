"""The run artifacts of a retrieval result: metrics.json and matches.csv (contract).

``matches.csv`` is also the business export (match.py): one row per (query, rank) of the top-k with the score,
the contract's columns first, then both cards' key columns.
"""

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
# The cards' key columns after the contract's (where the catalogs have them): query_<column>, db_<column>.
QUERY_KEY_COLUMNS = ("price", "dealer", "sku")
DB_KEY_COLUMNS = ("price", "dealer", "cat_1", "cat_2", "cat_3", "img_ref", "sku")


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
    """One row per (query, rank) of the top-k: CSV row positions, score, titles and targets of both sides (the
    contract's columns), the query's product group under the product protocol, then the cards' key columns."""
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
    columns |= {f"query_{c}": _column(qframe, c, qpos) for c in QUERY_KEY_COLUMNS if c in qframe.columns}
    columns |= {f"db_{c}": _column(dframe, c, dpos) for c in DB_KEY_COLUMNS if c in dframe.columns}
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
