"""The one retrieval pipeline: embed, index, search, fuse, score, write artifacts.

`evaluate.py` runs it with off-the-shelf encoders; the training callback runs it with the module's own
encoder. A :class:`RetrievalResult` carries everything later stages need (metrics, matches.csv, galleries,
W&B tables), so no stage recomputes what another already holds.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prodmatch.data.catalog import IMAGE_VIEW, TEXT_VIEWS, Catalog
from prodmatch.encoders.base import EmbeddingCache, Encoder
from prodmatch.errors import ConfigError
from prodmatch.retrieval.fusion import concat, rerank
from prodmatch.retrieval.index import AnnoyIndex, ExactIndex
from prodmatch.retrieval.metrics import metric_dict

log = logging.getLogger("prodmatch.retrieval")

FUSIONS = ("none", "concat", "rerank")
SEARCHES = ("annoy", "exact")
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


@dataclass(frozen=True)
class Channel:
    """One embedding of the cards: an encoder (by name) applied to a view (`image` or a text view)."""

    encoder: str
    view: str

    @property
    def label(self) -> str:
        return self.view if self.encoder in ("image", "text", "model") else f"{self.view}:{self.encoder}"


@dataclass
class RetrievalResult:
    """Top-k database rows per query, plus what metrics and reports need."""

    queries: Catalog
    database: Catalog
    ids: np.ndarray  # [Q, k] database row positions (in `database`), -1 where fewer than k exist
    scores: np.ndarray  # [Q, k] cosine similarity of the final ranking
    ann_ids: np.ndarray  # [Q, k] first-stage ANNOY top-k
    exact_ids: np.ndarray  # [Q, k] first-stage exact top-k (same vectors)
    k: int
    description: str
    uses_images: bool = False  # whether any channel embedded images (galleries and W&B tables show them)
    timings: dict[str, float] = field(default_factory=dict)


class RetrievalPipeline:
    """Embeds both catalogs per channel, searches with ANNOY (and exactly, for ann_recall), fuses, keeps top-k."""

    def __init__(
        self,
        channels: Sequence[Mapping[str, str]],
        fusion: str = "none",
        k: int = 10,
        rerank_k: int = 40,
        concat_weights: Sequence[float] | None = None,
        search: str = "annoy",
        exact_chunk_size: int = 4096,
        index: Callable[[], AnnoyIndex] | None = None,
    ) -> None:
        self.channels = [Channel(str(c["encoder"]), str(c["view"])) for c in channels]
        self.fusion = fusion
        self.k = int(k)
        self.rerank_k = int(rerank_k)
        self.concat_weights = None if concat_weights is None else [float(w) for w in concat_weights]
        self.search = search
        self.exact_chunk_size = int(exact_chunk_size)
        self.index_factory = index or AnnoyIndex
        self._validate()

    def _validate(self) -> None:
        """Fail on a bad retrieval config with a message naming the key and the allowed values."""
        if self.fusion not in FUSIONS:
            raise ConfigError(f"retrieval.fusion={self.fusion!r} is not one of {', '.join(FUSIONS)}")
        if self.search not in SEARCHES:
            raise ConfigError(f"retrieval.search={self.search!r} is not one of {', '.join(SEARCHES)}")
        wanted = {"none": (1, 1), "concat": (2, 8), "rerank": (2, 2)}[self.fusion]
        if not wanted[0] <= len(self.channels) <= wanted[1]:
            raise ConfigError(
                f"retrieval.fusion={self.fusion} needs {wanted[0]}"
                f"{'' if wanted[0] == wanted[1] else f'-{wanted[1]}'} channels, got {len(self.channels)}"
            )
        for ch in self.channels:
            if ch.view != IMAGE_VIEW and ch.view not in TEXT_VIEWS:
                raise ConfigError(
                    f"retrieval channel view {ch.view!r} is not one of {IMAGE_VIEW}, {', '.join(TEXT_VIEWS)}"
                )
        if self.k < 1:
            raise ConfigError(f"retrieval.k={self.k} must be >= 1")
        if self.fusion == "rerank" and self.rerank_k < self.k:
            raise ConfigError(f"retrieval.rerank_k={self.rerank_k} must be >= retrieval.k={self.k}")
        if self.concat_weights is not None and len(self.concat_weights) != len(self.channels):
            raise ConfigError(
                f"retrieval.concat_weights has {len(self.concat_weights)} weights for {len(self.channels)} channels"
            )

    @property
    def encoder_names(self) -> list[str]:
        """Encoders this pipeline needs, in channel order, without repeats."""
        return list(dict.fromkeys(ch.encoder for ch in self.channels))

    @property
    def needs_images(self) -> bool:
        return any(ch.view == IMAGE_VIEW for ch in self.channels)

    @property
    def description(self) -> str:
        labels = [ch.label for ch in self.channels]
        if self.fusion == "concat":
            return " + ".join(labels) + " (concat)"
        if self.fusion == "rerank":
            return f"{labels[0]} top-{self.rerank_k}, re-ranked by {labels[1]}"
        return labels[0]

    def embed(
        self,
        channel: Channel,
        catalogs: Sequence[Catalog],
        encoders: Mapping[str, Encoder],
        cache: EmbeddingCache | None = None,
    ) -> list[np.ndarray]:
        """Embed each catalog with the channel's encoder (fitted on all of them first, where it fits)."""
        if channel.encoder not in encoders:
            raise ConfigError(
                f"retrieval channel names encoder {channel.encoder!r}, which is not configured "
                f"(known: {', '.join(sorted(encoders))})"
            )
        encoder = encoders[channel.encoder]
        prepare = getattr(encoder, "prepare", None)
        if prepare is not None:
            prepare(catalogs, channel.view)
        if cache is None:
            return [encoder.encode(cat, channel.view) for cat in catalogs]
        return [cache.get_or_compute(encoder, cat, channel.view) for cat in catalogs]

    def run(
        self,
        queries: Catalog,
        database: Catalog,
        encoders: Mapping[str, Encoder],
        cache: EmbeddingCache | None = None,
    ) -> RetrievalResult:
        """Embed, search, fuse and return the top-k of every query."""
        warn_unmatched_targets(queries, database)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        vectors = [self.embed(ch, [queries, database], encoders, cache) for ch in self.channels]
        timings["embed_s"] = time.perf_counter() - t0

        if self.fusion == "concat":
            first_q = concat([v[0] for v in vectors], self.concat_weights)
            first_db = concat([v[1] for v in vectors], self.concat_weights)
        else:
            first_q, first_db = vectors[0]
        depth = self.rerank_k if self.fusion == "rerank" else self.k

        t0 = time.perf_counter()
        exact_ids, exact_scores = (
            ExactIndex(chunk_size=self.exact_chunk_size).build(first_db).search(first_q, depth)
        )
        timings["exact_search_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ann = self.index_factory()
        ann.build(first_db)
        ann_ids, ann_scores = ann.search(first_q, depth)
        timings["annoy_build_search_s"] = time.perf_counter() - t0

        ids, scores = (ann_ids, ann_scores) if self.search == "annoy" else (exact_ids, exact_scores)
        if self.fusion == "rerank":
            ids, scores = rerank(ids, vectors[1][0], vectors[1][1], self.k)
        log.info(
            "retrieval %s: %d queries x %d database cards, %s",
            self.description,
            len(queries),
            len(database),
            ", ".join(f"{k}={v:.2f}" for k, v in timings.items()),
        )
        return RetrievalResult(
            queries=queries,
            database=database,
            ids=ids[:, : self.k],
            scores=scores[:, : self.k],
            ann_ids=ann_ids[:, : self.k],
            exact_ids=exact_ids[:, : self.k],
            k=self.k,
            description=self.description,
            uses_images=self.needs_images,
            timings=timings,
        )


def warn_unmatched_targets(queries: Catalog, database: Catalog) -> dict[str, int]:
    """Count (and log) query cards whose target no database card has: their Acc@10 is 0 by construction."""
    targets, counts = np.unique(queries.targets.astype(str), return_counts=True)
    missing = ~np.isin(targets, database.targets.astype(str))
    unmatched = dict(zip(targets[missing].tolist(), counts[missing].tolist(), strict=True))
    if unmatched:
        log.warning(
            "%d of %d query cards have a target no database card has (%s): they count as misses in Acc@10; "
            "check the target names of both catalogs",
            sum(unmatched.values()),
            len(queries),
            ", ".join(f"{t}: {n}" for t, n in unmatched.items()),
        )
    return unmatched


def retrieval_metrics(result: RetrievalResult, prefix: str = "retrieval/") -> dict[str, float]:
    """The contract's flat metric keys for one result (sku metrics only where both catalogs have `sku`)."""
    with_sku = result.queries.skus is not None and result.database.skus is not None
    return metric_dict(
        result.queries.targets,
        result.database.targets,
        result.ids,
        k=result.k,
        query_skus=result.queries.skus if with_sku else None,
        db_skus=result.database.skus if with_sku else None,
        ann_ids=result.ann_ids,
        exact_ids=result.exact_ids,
        prefix=prefix,
    )


def _ranked_pairs(result: RetrievalResult) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat (query position, rank, database position, score) of every returned match, padding skipped."""
    q, k = result.ids.shape
    valid = (result.ids >= 0).ravel()
    qpos = np.repeat(np.arange(q), k)[valid]
    rank = np.tile(np.arange(1, k + 1), q)[valid]
    return qpos, rank, result.ids.ravel()[valid], result.scores.ravel()[valid].astype(np.float64)


def matches_frame(result: RetrievalResult) -> pd.DataFrame:
    """One row per (query, rank) with CSV row positions and titles/targets of both sides (contract)."""
    qpos, rank, dpos, score = _ranked_pairs(result)
    qframe, dframe = result.queries.frame, result.database.frame
    return pd.DataFrame(
        {
            "query_idx": result.queries.row_ids[qpos],
            "rank": rank,
            "db_idx": result.database.row_ids[dpos],
            "score": np.round(score, 6),
            "query_title": qframe["title"].to_numpy(dtype=object)[qpos],
            "db_title": dframe["title"].to_numpy(dtype=object)[dpos],
            "query_target": qframe["target"].to_numpy(dtype=object)[qpos],
            "db_target": dframe["target"].to_numpy(dtype=object)[dpos],
        },
        columns=list(MATCH_COLUMNS),
    )


EXPORT_COLUMNS = ("title", "price", "dealer", "target", "cat_1", "cat_2", "cat_3", "img_ref", "sku")


def export_frame(result: RetrievalResult) -> pd.DataFrame:
    """The business export: each query card's top-N with scores and both cards' key columns."""
    qpos, rank, dpos, score = _ranked_pairs(result)
    columns: dict[str, np.ndarray] = {"query_idx": result.queries.row_ids[qpos]}
    qframe, dframe = result.queries.frame, result.database.frame
    for col in ("title", "price", "dealer", "sku"):
        if col in qframe:
            columns[f"query_{col}"] = qframe[col].to_numpy(dtype=object)[qpos]
    columns |= {"rank": rank, "score": np.round(score, 6), "db_idx": result.database.row_ids[dpos]}
    for col in EXPORT_COLUMNS:
        if col in dframe:
            columns[f"db_{col}"] = dframe[col].to_numpy(dtype=object)[dpos]
    return pd.DataFrame(columns)


def write_artifacts(
    result: RetrievalResult, metrics: Mapping[str, Any], run_dir: str | Path
) -> tuple[Path, Path]:
    """Write the contract's metrics.json and matches.csv into the run dir (timings go to timings.json)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = run_dir / "metrics.json"
    # Non-finite values (e.g. sku metrics when no query's SKU is in the database) become JSON null.
    clean = {k: float(v) if math.isfinite(float(v)) else None for k, v in metrics.items()}
    metrics_path.write_text(json.dumps(clean, indent=2, sort_keys=True))
    matches_path = run_dir / "matches.csv"
    matches_frame(result).to_csv(matches_path, index=False)
    (run_dir / "timings.json").write_text(json.dumps(result.timings, indent=2))
    return metrics_path, matches_path
