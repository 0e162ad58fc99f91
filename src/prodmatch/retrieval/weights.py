"""Per-channel concat weights chosen on the validation products (``retrieval.concat_weights=auto``).

Every candidate weight vector (each combination of ``grid`` values over the channels, scaled to sum 1, with
repeats and the all-zero one dropped; equal weights first) fuses the channels with
:func:`prodmatch.retrieval.fusion.concat`. Only the validation queries are searched, exactly, against the fused
database, and the candidate with the best ``metric`` over them wins (the earlier candidate on ties, so equal
weights win a tie). The embeddings come in computed once: only the concatenation and that search repeat.

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
from prodmatch.retrieval.metrics import acc_at_k, sku_metrics, threshold_curve

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
        values = np.array([self._value(query_blocks, db_blocks, labels, w, k, depth) for w in weights])
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

    def _value(
        self,
        query_blocks: Sequence[np.ndarray],
        db_blocks: Sequence[np.ndarray],
        labels: _Labels,
        weights: np.ndarray,
        k: int,
        depth: int,
    ) -> float:
        """The objective of one weight vector: fuse, search the queries exactly, score each measure, average."""
        index = ExactIndex().build(concat(db_blocks, weights))
        ids, scores = index.search(concat(query_blocks, weights), depth)
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
