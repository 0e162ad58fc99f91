"""Example queries of a result with their ranked hits: the one source of W&B tables and HTML galleries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prodmatch.retrieval.result import RetrievalResult

# Query rows (positions in the query CSV) that the study checked by eye; shown first wherever examples are.
SHOWCASE_QUERY_IDS: tuple[int, ...] = (0, 500, 621, 626)


@dataclass(frozen=True)
class Hit:
    """One ranked database card of an example query."""

    rank: int
    db_pos: int  # position in result.database
    score: float
    same_target: bool
    same_sku: bool | None  # None where either card has no SKU


@dataclass(frozen=True)
class Example:
    """A query card (position in result.queries) and its top-ranked hits."""

    query_pos: int
    hits: tuple[Hit, ...]


def example_positions(n_queries: int, n: int, first: Sequence[int] = SHOWCASE_QUERY_IDS) -> np.ndarray:
    """``n`` query positions: the showcase ids (clipped to the catalog), then evenly spread ones."""
    if n <= 0 or n_queries == 0:
        return np.zeros(0, dtype=np.int64)
    chosen = list(dict.fromkeys(min(int(i), n_queries - 1) for i in first))[:n]
    spread = np.linspace(0, n_queries - 1, num=min(n, n_queries)).round().astype(np.int64)
    chosen += [int(i) for i in spread if int(i) not in chosen][: n - len(chosen)]
    return np.asarray(chosen, dtype=np.int64)


def positions_of_rows(result: RetrievalResult, row_ids: Sequence[int]) -> list[int]:
    """Query positions of query-CSV rows (clipped to the catalog, de-duplicated, rows not kept skipped)."""
    rows = result.queries.row_ids
    last = int(rows.max()) if len(rows) else 0
    wanted = list(dict.fromkeys(min(max(int(r), 0), last) for r in row_ids))
    lookup = {int(r): i for i, r in enumerate(rows)}
    return [lookup[r] for r in wanted if r in lookup]


def examples(result: RetrievalResult, positions: Sequence[int], k: int | None = None) -> list[Example]:
    """The top-``k`` (default: the result's k) of each query position, padding skipped."""
    k = k or result.k
    q_t, d_t = result.queries.targets, result.database.targets
    q_s, d_s = result.queries.skus, result.database.skus
    out = []
    for qpos in positions:
        hits = []
        for rank, (dpos, score) in enumerate(
            zip(result.ids[qpos, :k], result.scores[qpos, :k], strict=True), 1
        ):
            if dpos < 0:
                continue
            same_sku = None
            if q_s is not None and d_s is not None and q_s[qpos] and d_s[dpos]:
                same_sku = bool(q_s[qpos] == d_s[dpos])
            hits.append(Hit(rank, int(dpos), float(score), bool(q_t[qpos] == d_t[dpos]), same_sku))
        out.append(Example(int(qpos), tuple(hits)))
    return out
