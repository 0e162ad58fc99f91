"""Per-channel concat weights chosen on the validation products (``retrieval.concat_weights=auto``).

Every candidate weight vector (each combination of ``grid`` values over the channels, scaled to sum 1, with
repeats and the all-zero one dropped; equal weights first) fuses the channels with
:func:`prodmatch.retrieval.fusion.concat`. Only the validation queries are searched, exactly, against the fused
database, and the candidate with the best ``metric`` over them wins (the earlier candidate on ties, so equal
weights win a tie). The embeddings come in computed once, and so does each channel's cosine matrix: a
candidate's fused scores are their weighted sum (:class:`_ChannelScores`), no wide block is concatenated per
candidate.

``metric``: a SKU measure of :func:`prodmatch.retrieval.metrics.sku_metrics` at the pipeline's k
(``sku_mrr``, ``sku_recall``, ``sku_precision``, ``sku_full_recall``, ``sku_map``), ``match_f1`` (the best
mean match F1 over the threshold grid of :func:`prodmatch.retrieval.metrics.choose_threshold`) or ``acc``
(the study's category Acc@k), or a list of them whose mean is maximised. A list lets one objective value
both the product and its category: a channel that only separates categories earns weight when ``acc`` is
in it, since SKU measures alone cannot see what it adds past the same-product cards.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np

from prodmatch.errors import ConfigError
from prodmatch.retrieval.fusion import concat
from prodmatch.retrieval.index import ExactIndex
from prodmatch.retrieval.index.base import as_matrix, pad_results
from prodmatch.retrieval.metrics import acc_at_k, sku_metrics, threshold_curve
from prodmatch.utils.vectors import l2_normalize

log = logging.getLogger("prodmatch.retrieval")

METRICS = ("sku_mrr", "sku_recall", "sku_precision", "sku_full_recall", "sku_map", "match_f1", "acc")
MAX_CANDIDATES = 10_000
_THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)


class WeightSearch:
    """Chooses concat weights from ``grid`` by ``metric`` (one name or a list, averaged) over validation
    queries (see the module doc)."""

    def __init__(
        self, grid: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), metric: str | Sequence[str] = "sku_mrr"
    ) -> None:
        self.grid = tuple(float(g) for g in grid)
        self.metrics = (str(metric),) if isinstance(metric, str) else tuple(str(m) for m in metric)
        g = np.asarray(self.grid)
        if g.size == 0 or not np.isfinite(g).all() or (g < 0).any() or not (g > 0).any():
            raise ConfigError(
                f"retrieval.weight_search.grid={list(self.grid)} must hold non-negative weights, one of them "
                "positive; e.g. [0.0, 0.25, 0.5, 0.75, 1.0]"
            )
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise ConfigError(
                f"retrieval.weight_search.metric={list(self.metrics)}: {unknown or 'empty'}; use one of "
                f"{', '.join(METRICS)} or a list of them (their mean is maximised)"
            )

    @property
    def metric(self) -> str:
        """The objective's name, as logged: the measure, or the measures joined by '+'."""
        return "+".join(self.metrics)

    def candidates(self, n_channels: int) -> np.ndarray:
        """[C, n_channels] weight vectors summing to 1: equal weights first, then the grid's combinations."""
        if len(self.grid) ** n_channels > MAX_CANDIDATES:
            raise ConfigError(
                f"retrieval.weight_search.grid has {len(self.grid)} values: {len(self.grid)}^{n_channels} "
                f"combinations for {n_channels} channels is too many; use a shorter grid"
            )
        combos = np.array([np.ones(n_channels), *itertools.product(self.grid, repeat=n_channels)])
        combos = combos[combos.sum(axis=1) > 0]
        combos = combos / combos.sum(axis=1, keepdims=True)
        _, first = np.unique(np.round(combos, 9), axis=0, return_index=True)
        return combos[np.sort(first)]

    def evaluate(
        self,
        query_blocks: Sequence[np.ndarray],
        db_blocks: Sequence[np.ndarray],
        query_skus: Sequence[str | None] | np.ndarray,
        db_skus: Sequence[str | None] | np.ndarray,
        k: int,
        depth: int | None = None,
        targets: tuple[Sequence[str], Sequence[str]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(candidates [C, m], their objective over the queries [C]); ``depth`` (>= k) is match_f1's candidate
        list; ``targets`` (query targets, database targets) are what ``acc`` scores."""
        if "acc" in self.metrics and targets is None:
            raise ValueError("weight_search metric acc needs the (query, database) targets")
        weights = self.candidates(len(query_blocks))
        depth = max(k, depth or k) if "match_f1" in self.metrics else k
        labels = _Labels(query_skus, db_skus, targets)
        channels = _ChannelScores.of(query_blocks, db_blocks)
        if channels is not None:  # each channel's cosines once; a candidate only sums them
            results = (channels.search(w, depth) for w in weights)
        else:
            results = (_fused_search(query_blocks, db_blocks, w, depth) for w in weights)
        values = np.array([self._value(labels, ids, scores, k) for ids, scores in results])
        return weights, values

    def choose(
        self,
        query_blocks: Sequence[np.ndarray],
        db_blocks: Sequence[np.ndarray],
        query_skus: Sequence[str | None] | np.ndarray,
        db_skus: Sequence[str | None] | np.ndarray,
        k: int,
        depth: int | None = None,
        targets: tuple[Sequence[str], Sequence[str]] | None = None,
    ) -> np.ndarray | None:
        """The best candidate's weights, or None when no query has a same-SKU database card to score on."""
        weights, values = self.evaluate(query_blocks, db_blocks, query_skus, db_skus, k, depth, targets)
        if not np.isfinite(values).any():
            return None
        best = int(np.nanargmax(values))
        log.info(
            "concat weights %s chosen on %d validation queries (%s %.4f; equal weights %.4f)",
            np.round(weights[best], 4).tolist(), len(query_skus), self.metric, values[best], values[0],
        )  # fmt: skip
        return weights[best]

    def _value(self, labels: _Labels, ids: np.ndarray, scores: np.ndarray, k: int) -> float:
        """The objective of one weight vector's search results: score each measure, average."""
        sku = sku_metrics(labels.query_skus, labels.db_skus, ids, k)
        if not sku["sku_queries"]:
            return float(
                "nan"
            )  # no same-SKU card to score on: the objective is undefined, as for one measure
        values = []
        for name in self.metrics:
            if name == "match_f1":
                f1 = threshold_curve(scores, ids, labels.query_skus, labels.db_skus, _THRESHOLDS)["f1"]
                values.append(float(np.nanmax(f1)) if np.isfinite(f1).any() else float("nan"))
            elif name == "acc":
                values.append(acc_at_k(labels.query_targets, labels.db_targets, ids, k)[0])
            else:
                values.append(float(sku[name if name == "sku_mrr" else f"{name}@{k}"]))
        return float(np.mean(values))


def _fused_search(
    query_blocks: Sequence[np.ndarray], db_blocks: Sequence[np.ndarray], weights: np.ndarray, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse at ``weights`` and search the queries exactly (what a run with these weights does)."""
    index = ExactIndex().build(concat(db_blocks, weights))
    return index.search(concat(query_blocks, weights), depth)


class _ChannelScores:
    """Each channel's cosines between the queries and the database, kept to score every candidate.

    :func:`~prodmatch.retrieval.fusion.concat` scales unit-norm blocks by sqrt(w) and normalises the row again, so
    the fused cosine of a query and a card is ``sum_c w_c cos_c / (n_q n_d)`` with ``n = sqrt(sum_c w_c)`` over
    the channels where the row is not all zeros. Summing the channels' score matrices therefore gives the fused
    search's scores (to float32 rounding) without concatenating wide blocks (TF-IDF vocabularies) per candidate.
    The top-``depth`` is taken as :class:`ExactIndex` takes it: descending score, then ascending id.
    """

    MAX_BYTES = (
        512 * 2**20
    )  # the channels' [queries, database] float32 matrices together; above: fuse per candidate

    def __init__(self, scores: list[np.ndarray], query_has: np.ndarray, db_has: np.ndarray) -> None:
        self.scores, self.query_has, self.db_has = scores, query_has, db_has

    @classmethod
    def of(cls, query_blocks: Sequence[np.ndarray], db_blocks: Sequence[np.ndarray]) -> _ChannelScores | None:
        """The channels' score matrices, or None when they would not fit in MAX_BYTES."""
        n_q, n_db = len(query_blocks[0]), len(db_blocks[0])
        if 4 * n_q * n_db * len(query_blocks) > cls.MAX_BYTES:
            return None
        queries = [l2_normalize(as_matrix(b, f"query block {i}")) for i, b in enumerate(query_blocks)]
        db = [l2_normalize(as_matrix(b, f"database block {i}")) for i, b in enumerate(db_blocks)]
        scores = [q @ d.T for q, d in zip(queries, db, strict=True)]
        query_has = np.stack([np.any(q != 0, axis=1) for q in queries], axis=1).astype(np.float64)
        db_has = np.stack([np.any(d != 0, axis=1) for d in db], axis=1).astype(np.float64)
        return cls(scores, query_has, db_has)

    def search(self, weights: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids [Q, depth], scores [Q, depth]) of the fused search at ``weights``, padded past the database."""
        fused = sum(np.float32(w) * s for w, s in zip(weights, self.scores, strict=True) if w > 0)
        norms = np.outer(np.sqrt(self.query_has @ weights), np.sqrt(self.db_has @ weights)).astype(np.float32)
        fused = np.divide(fused, norms, out=np.zeros_like(fused), where=norms > 0)
        return _top(fused, depth)


def _top(scores: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's best ``depth`` columns by descending score, ties by ascending id; padded past the columns."""
    n_rows, n_cols = scores.shape
    d = min(depth, n_cols)
    kth = -np.partition(-scores, d - 1, axis=1)[:, d - 1]
    ids = np.empty((n_rows, d), dtype=np.int64)
    top = np.empty((n_rows, d), dtype=np.float32)
    for r in range(n_rows):  # the few cards at or above the row's cut (more than d only on ties)
        cand = np.flatnonzero(scores[r] >= kth[r])
        order = np.lexsort((cand, -scores[r, cand]))[:d]
        ids[r], top[r] = cand[order], scores[r, cand[order]]
    return pad_results(ids, top, depth)


class _Labels:
    """What the measures compare: the SKUs, and the targets when ``acc`` is asked for."""

    def __init__(
        self,
        query_skus: Sequence[str | None] | np.ndarray,
        db_skus: Sequence[str | None] | np.ndarray,
        targets: tuple[Sequence[str], Sequence[str]] | None,
    ) -> None:
        self.query_skus, self.db_skus = query_skus, db_skus
        self.query_targets, self.db_targets = targets or (None, None)
