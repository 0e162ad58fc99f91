"""The retrieval pipeline: embed each channel, fuse, search the configured index, post-process, return a result.

`evaluate.py`, `match.py` and the training callback all run it (through :mod:`prodmatch.retrieval.evaluation`),
so an off-the-shelf encoder and a module being trained are scored the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prodmatch.data.catalog import IMAGE_VIEW, TEXT_VIEWS, Catalog
from prodmatch.data.splits import ProductSplit, check_fractions
from prodmatch.encoders.base import Encoder, EncodeResult, data_counts, merge_results, strict_error
from prodmatch.encoders.cache import EmbeddingCache
from prodmatch.errors import ConfigError
from prodmatch.layout import ANN_RECALL_SAMPLE, ann_recall_name
from prodmatch.retrieval.expansion import QueryExpansion
from prodmatch.retrieval.fusion import concat, rerank
from prodmatch.retrieval.index import AnnoyIndex, sampled_recall
from prodmatch.retrieval.protocol import PROTOCOLS, THRESHOLD_GROUP, assign_split, draw_split, query_split
from prodmatch.retrieval.result import RetrievalResult
from prodmatch.retrieval.weights import WeightSearch
from prodmatch.utils import progress

log = logging.getLogger("prodmatch.retrieval")

FUSIONS = ("none", "concat", "rerank")
AUTO = "auto"  # concat_weights=auto: chosen on the validation products by `weight_search`


@dataclass(frozen=True)
class Channel:
    """One embedding of the cards: an encoder (by name) applied to a view (`image` or a text view)."""

    encoder: str
    view: str

    @property
    def label(self) -> str:
        return self.view if self.encoder in ("image", "text", "model") else f"{self.view}:{self.encoder}"


class RetrievalPipeline:
    """Channels -> (fused) first-stage vectors -> index top-k (or top-rerank_k, re-ranked by the second channel).

    ``index`` builds the search index (a partial of a backend from `conf/retrieval/index/`); the ANN's recall
    against exact search is measured on a seeded sample of ``recall_sample`` queries.

    ``protocol="product"`` (:mod:`prodmatch.retrieval.protocol`) gives the query cards their product group
    (``split_fractions`` and ``seed``) and keeps the ranking ``max(k, match_depth)`` deep for the match
    measures; ``concat_weights="auto"`` then chooses the concat weights on the val products' queries with
    ``weight_search``. ``expansion`` (off unless its ``top`` > 0) searches again with expanded queries.
    """

    def __init__(
        self,
        channels: Sequence[Mapping[str, str]] | None,
        fusion: str = "none",
        k: int = 10,
        rerank_k: int = 40,
        concat_weights: Sequence[float] | str | None = None,
        index: Callable[[], Any] | None = None,
        recall_sample: int = 1000,
        seed: int = 0,
        protocol: str = "category",
        split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
        match_depth: int = 50,
        weight_search: WeightSearch | None = None,
        expansion: QueryExpansion | None = None,
    ) -> None:
        self.channels = [Channel(str(c["encoder"]), str(c["view"])) for c in channels or ()]
        self.fusion = fusion
        self.k = k
        self.rerank_k = rerank_k
        self.concat_weights: list[float] | str | None = (
            concat_weights
            if concat_weights is None or isinstance(concat_weights, str)
            else [float(w) for w in concat_weights]
        )
        self.protocol = protocol
        self.split_fractions = [float(f) for f in split_fractions]
        self.match_depth = match_depth
        self.weight_search = weight_search or WeightSearch()
        self.expansion = expansion or QueryExpansion()
        if isinstance(index, str):  # `retrieval.index=exact` sets a value; the backend is a config group
            raise ConfigError(
                f"retrieval.index={index} is not a backend choice; choose one with retrieval/index={index} "
                "(annoy, exact, faiss_hnsw, faiss_ivfflat, faiss_ivfpq or milvus)"
            )
        self.index_factory = index or AnnoyIndex
        self.recall_sample = recall_sample
        self.seed = seed
        self._validate()

    def _validate(self) -> None:
        """Fail on a bad retrieval config with one line naming the key and the allowed values."""
        if self.fusion not in FUSIONS:
            raise ConfigError(f"retrieval.fusion={self.fusion!r} is not one of {', '.join(FUSIONS)}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"retrieval.protocol={self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if self.protocol == "product":
            check_fractions(self.split_fractions)
        for key in ("k", "rerank_k", "recall_sample", "match_depth"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"retrieval.{key}={value!r} must be a positive integer")
        if not self.channels:
            raise ConfigError("retrieval.channels is empty; give at least one {encoder, view} channel")
        lo, hi = {"none": (1, 1), "concat": (2, 8), "rerank": (2, 2)}[self.fusion]
        if not lo <= len(self.channels) <= hi:
            need = str(lo) if lo == hi else f"{lo}-{hi}"
            raise ConfigError(
                f"retrieval.fusion={self.fusion} needs {need} channels, got {len(self.channels)}; "
                "fix retrieval.channels or retrieval.fusion"
            )
        for ch in self.channels:
            if ch.view != IMAGE_VIEW and ch.view not in TEXT_VIEWS:
                raise ConfigError(
                    f"retrieval.channels: view {ch.view!r} is not one of {IMAGE_VIEW}, {', '.join(TEXT_VIEWS)}"
                )
        if self.fusion == "rerank" and self.rerank_k < self.k:
            raise ConfigError(f"retrieval.rerank_k={self.rerank_k} must be >= retrieval.k={self.k}")
        if self.concat_weights == AUTO:
            if self.fusion != "concat" or self.protocol != "product":
                raise ConfigError(
                    "retrieval.concat_weights=auto chooses weights on the validation products: it needs "
                    "retrieval.fusion=concat and retrieval.protocol=product"
                )
        elif isinstance(self.concat_weights, str):
            raise ConfigError(
                f"retrieval.concat_weights={self.concat_weights!r} must be a list of weights, auto or null"
            )
        elif self.concat_weights is not None and len(self.concat_weights) != len(self.channels):
            raise ConfigError(
                f"retrieval.concat_weights has {len(self.concat_weights)} weights for {len(self.channels)} "
                "channels; give one weight per channel"
            )

    def product_split(self, database: Catalog) -> ProductSplit:
        """The products of ``database`` in train / val / test groups (``split_fractions``, ``seed``)."""
        return draw_split(database, self.split_fractions, self.seed)

    @property
    def encoder_names(self) -> list[str]:
        """Encoders this pipeline needs, in channel order, without repeats."""
        return list(dict.fromkeys(ch.encoder for ch in self.channels))

    @property
    def needs_images(self) -> bool:
        return any(ch.view == IMAGE_VIEW for ch in self.channels)

    @property
    def depth(self) -> int:
        """Results kept per query: k, or the match measures' candidates under the product protocol."""
        return max(self.k, self.match_depth) if self.protocol == "product" else self.k

    @property
    def description(self) -> str:
        labels = [ch.label for ch in self.channels]
        if self.fusion == "concat":
            text = " + ".join(labels) + " (concat)"
        elif self.fusion == "rerank":
            text = f"{labels[0]} top-{self.rerank_k}, re-ranked by {labels[1]}"
        else:
            text = labels[0]
        if self.expansion.enabled:
            text += f", query expansion (top-{self.expansion.top}, alpha {self.expansion.alpha:g})"
        return text

    def run(
        self,
        queries: Catalog,
        database: Catalog,
        encoders: Mapping[str, Encoder],
        cache: EmbeddingCache | None = None,
        strict: bool = False,
        split: ProductSplit | None = None,
    ) -> RetrievalResult:
        """Embed, search, re-rank and return the ranking of every query (at least k deep).

        ``split``: the product protocol's split, as the task drew it with :meth:`product_split` (and handed to
        training); drawn here when not given.
        """
        warn_unmatched_targets(queries, database)
        if self.protocol == "product":
            queries = assign_split(queries, split or self.product_split(database))
        self._check_scorable(queries, database)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        embedded = [embed_channel(ch, queries, database, encoders, cache) for ch in self.channels]
        timings["embed_s"] = time.perf_counter() - t0
        stats, examples = merge_results([part for parts in embedded for part in parts])
        if strict and (err := strict_error(stats, examples)) is not None:
            raise err
        vectors = [(q.vectors, db.vectors) for q, db in embedded]
        queries, database, vectors = drop_unembedded(queries, database, vectors)
        self._check_scorable(
            queries, database, " left once the cards whose image could not be decoded were dropped"
        )
        data = data_counts(stats)

        t0 = time.perf_counter()
        weights = self._weights(queries, database, vectors)
        if self.concat_weights == AUTO:
            timings["weight_search_s"] = time.perf_counter() - t0
        if self.fusion == "concat":
            first_q = concat([v[0] for v in vectors], weights)
            first_db = concat([v[1] for v in vectors], weights)
        else:
            first_q, first_db = vectors[0]
        depth = self.rerank_k if self.fusion == "rerank" else self.depth
        t0 = time.perf_counter()
        index = self.index_factory()
        index.build(first_db)
        ids, scores = index.search(first_q, depth)
        if self.expansion.enabled:
            first_q = self.expansion.expand(first_q, first_db, ids, scores)
            ids, scores = index.search(first_q, depth)
        timings["search_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        search = {"index": type(index).__name__, **self._recall(index, first_q, first_db, ids)}
        timings["recall_s"] = time.perf_counter() - t0
        if self.fusion == "rerank":
            ids, scores = rerank(ids, vectors[1][0], vectors[1][1], self.depth)
        log.info(
            "retrieval %s: %d queries x %d database cards, %s",
            self.description, len(queries), len(database),
            ", ".join(f"{k}={v:.2f}" for k, v in timings.items()),
        )  # fmt: skip
        return RetrievalResult(
            queries=queries,
            database=database,
            ids=ids,
            scores=scores,
            k=self.k,
            description=self.description,
            channels=[{"encoder": c.encoder, "view": c.view} for c in self.channels],
            uses_images=self.needs_images,
            search=search,
            data=data,
            timings=timings,
            fusion_weights=(
                {ch.label: float(w) for ch, w in zip(self.channels, weights, strict=True)}
                if self.concat_weights == AUTO
                else {}
            ),
        )

    def _check_scorable(self, queries: Catalog, database: Catalog, after: str = "") -> None:
        """Cards to score, and a k the database can fill: a one-line error otherwise, never a capped or NaN figure.

        Acc@k divides by k, so with fewer than k database cards the padding would count as misses and cap it at
        cards / k.
        """
        if len(queries) == 0 or len(database) == 0:
            empty = "query" if len(queries) == 0 else "database"
            raise ConfigError(
                f"nothing to score: no {empty} card{after}; fix the {empty} catalog's images "
                "(data.check_images=decode drops the unreadable ones at load, with a report)"
            )
        if self.k > len(database):
            raise ConfigError(
                f"retrieval.k={self.k} is more than the {len(database)} database cards{after}: no query can fill "
                f"its top-{self.k}, and the padding would count as misses; set retrieval.k <= {len(database)}"
            )

    def _weights(
        self, queries: Catalog, database: Catalog, vectors: list[tuple[np.ndarray, np.ndarray]]
    ) -> list[float] | None:
        """The concat weights: as configured, or (concat_weights=auto) chosen on the val products' queries."""
        if not isinstance(self.concat_weights, str):  # the only string _validate lets through is "auto"
            return self.concat_weights
        val = query_split(queries) == THRESHOLD_GROUP
        chosen = None
        if val.any():
            chosen = self.weight_search.choose(
                [q[val] for q, _ in vectors],
                [db for _, db in vectors],
                queries.skus[val],
                database.skus,
                self.k,
                self.depth,
                targets=(queries.targets[val], database.targets),
            )
        if chosen is None:
            log.warning(
                "retrieval.concat_weights=auto: no validation query has a same-SKU database card "
                "(%d validation queries); equal weights are used", int(val.sum()),
            )  # fmt: skip
            return [1.0 / len(vectors)] * len(vectors)
        return chosen.tolist()

    def _recall(self, index: Any, q: np.ndarray, db: np.ndarray, ids: np.ndarray) -> dict[str, float]:
        """The index's recall@k against exact search on a seeded sample of queries (1.0 for exact search)."""
        recall, n = sampled_recall(
            index,
            db,
            q,
            min(self.k, ids.shape[1]),
            sample_size=self.recall_sample,
            seed=self.seed,
            ann_ids=ids,
        )
        return {ann_recall_name(self.k): recall, ANN_RECALL_SAMPLE: n}


def _inputs(catalog: Catalog, view: str) -> list:
    """What an encoder takes for a view: the image file paths, or the view's texts."""
    return catalog.image_paths() if view == IMAGE_VIEW else catalog.texts(view)


def embed_channel(
    channel: Channel,
    queries: Catalog,
    database: Catalog,
    encoders: Mapping[str, Encoder],
    cache: EmbeddingCache | None,
) -> tuple[EncodeResult, EncodeResult]:
    """Both catalogs' encode results for one channel (the queries', the database's), fitted on both catalogs'
    texts first where the encoder learns: their vectors and what the encoder met (e.g. unreadable images)."""
    if channel.encoder not in encoders:
        raise ConfigError(
            f"retrieval channel names encoder {channel.encoder!r}, which is not configured "
            f"(known: {', '.join(sorted(encoders))}); fix retrieval.channels or add it under encoders"
        )
    encoder = encoders[channel.encoder]
    wanted = "image" if channel.view == IMAGE_VIEW else "text"
    if encoder.modality != wanted:
        raise ConfigError(
            f"retrieval channel {{encoder: {channel.encoder}, view: {channel.view}}}: a {encoder.modality} "
            f"encoder cannot embed the {channel.view} view; use a {wanted} encoder"
        )
    inputs = [_inputs(queries, channel.view), _inputs(database, channel.view)]
    if encoder.needs_fit:
        encoder.fit([*inputs[0], *inputs[1]])
    encoded = []
    for side, part in zip(("queries", "database"), inputs, strict=True):
        with progress.stage(side):  # names the side on the image embedder's progress bar
            encoded.append(cache.get_or_compute(encoder, part) if cache is not None else encoder.encode(part))
    return encoded[0], encoded[1]


def drop_unembedded(
    queries: Catalog, database: Catalog, vectors: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[Catalog, Catalog, list[tuple[np.ndarray, np.ndarray]]]:
    """Drop the cards some channel could not embed (NaN rows: an image that did not decode), logged."""
    bad = [np.zeros(len(c), dtype=bool) for c in (queries, database)]
    for i in (0, 1):
        for v in vectors:
            bad[i] |= ~np.isfinite(v[i]).all(axis=1)
    if not (bad[0].any() or bad[1].any()):
        return queries, database, vectors
    log.warning(
        "dropped %d query and %d database cards whose image could not be decoded while embedding "
        "(counted in metrics.json under data/dropped/)", int(bad[0].sum()), int(bad[1].sum()),
    )  # fmt: skip
    keep_q, keep_db = ~bad[0], ~bad[1]
    vectors = [(np.asarray(q)[keep_q], np.asarray(db)[keep_db]) for q, db in vectors]
    return queries.subset(keep_q), database.subset(keep_db), vectors


def warn_unmatched_targets(queries: Catalog, database: Catalog) -> dict[str, int]:
    """Count (and log) query cards whose target no database card has: their Acc@k is 0 by construction."""
    targets, counts = np.unique(queries.targets.astype(str), return_counts=True)
    missing = ~np.isin(targets, database.targets.astype(str))
    unmatched = dict(zip(targets[missing].tolist(), counts[missing].tolist(), strict=True))
    if unmatched:
        log.warning(
            "%d of %d query cards have a target no database card has (%s): they count as misses in Acc@k; "
            "check the target names of both catalogs",
            sum(unmatched.values()), len(queries), ", ".join(f"{t}: {n}" for t, n in unmatched.items()),
        )  # fmt: skip
    return unmatched
