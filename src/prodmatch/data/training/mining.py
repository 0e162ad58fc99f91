"""Label-free positives: cross-modal mining of database cards that are likely the same product.

Cards of one modality's embeddings (e.g. title TF-IDF) that are *mutual* nearest neighbours across dealers,
with a cosine of at least a threshold, become pseudo-positive pairs for training the other modality (e.g. the
image model). A shop lists a product once, so the nearest card of another dealer is the natural candidate;
mutuality and the threshold trade pairs for precision. Connected components of the pairs give pseudo-SKU ids
for the class-batched datamodule modes (``PairDataModule(label="sku", labels=...)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from prodmatch.errors import ConfigError
from prodmatch.utils.vectors import l2_normalize


def _top_k(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k best columns, best first, equal scores by the lower column (a stable sort: deterministic)."""
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order.astype(np.int64), np.take_along_axis(sims, order, axis=1)


@dataclass(frozen=True)
class MinedPairs:
    """Pseudo-positive pairs of database rows, ``first < second``, with their cosine similarity."""

    first: np.ndarray  # int64 [P]
    second: np.ndarray  # int64 [P]
    score: np.ndarray  # float32 [P]

    def __len__(self) -> int:
        return len(self.first)


def _dealer_codes(dealers: Sequence[str] | np.ndarray, n: int) -> np.ndarray:
    codes, _ = pd.factorize(pd.Series(np.asarray(dealers, dtype=object).ravel()).astype(str))
    if len(codes) != n:
        raise ValueError(f"dealers has {len(codes)} values but the embeddings have {n} rows")
    return codes.astype(np.int64)


def cross_dealer_neighbours(
    embeddings: np.ndarray, dealers: Sequence[str] | np.ndarray, k: int = 1, chunk_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """(ids [N, k], cosine [N, k]) of each row's k nearest rows of *other* dealers (chunked exact search).

    Rows of the same dealer (the row itself included) are excluded by setting their similarity to -inf;
    a row with fewer than k rows of other dealers gets id -1 in the missing slots.
    """
    x = l2_normalize(embeddings)
    codes = _dealer_codes(dealers, len(x))
    k_eff = min(int(k), len(x))
    ids = np.empty((len(x), k_eff), dtype=np.int64)
    scores = np.empty((len(x), k_eff), dtype=np.float32)
    for start in range(0, len(x), chunk_size):
        sims = x[start : start + chunk_size] @ x.T
        sims[codes[start : start + chunk_size, None] == codes[None, :]] = -np.inf
        ids[start : start + chunk_size], scores[start : start + chunk_size] = _top_k(sims, k_eff)
    ids[~np.isfinite(scores)] = -1
    return ids, scores


def mine_pairs(
    embeddings: np.ndarray,
    dealers: Sequence[str] | np.ndarray,
    threshold: float = 0.5,
    k: int = 1,
    chunk_size: int = 1024,
) -> MinedPairs:
    """Mutual k-nearest-neighbour pairs across dealers with cosine >= ``threshold``.

    ``k=1`` keeps pairs that are each other's single nearest card of another dealer (a matching: every row
    is in at most one pair); a larger ``k`` admits more pairs, and more wrong ones.
    """
    if k < 1:
        raise ConfigError(f"mining k={k} must be >= 1; use k=1 for mutual nearest neighbours")
    if not -1.0 <= threshold <= 1.0:
        raise ConfigError(f"mining threshold={threshold} is not a cosine in [-1, 1]; use e.g. 0.5")
    ids, scores = cross_dealer_neighbours(embeddings, dealers, k, chunk_size)
    n = len(ids)
    rows = np.repeat(np.arange(n, dtype=np.int64), ids.shape[1])
    cols, sims = ids.ravel(), scores.ravel()
    keep = (cols >= 0) & (sims >= threshold)
    rows, cols, sims = rows[keep], cols[keep], sims[keep]
    # An edge i -> j is mutual when j -> i is an edge too; each mutual pair is kept once, as i < j.
    mutual = np.isin(cols * n + rows, rows * n + cols) & (rows < cols)
    return MinedPairs(rows[mutual], cols[mutual], sims[mutual].astype(np.float32))


def _clean_skus(skus: Sequence[str | None] | np.ndarray) -> np.ndarray:
    values = pd.Series(np.asarray(skus, dtype=object).ravel(), dtype=object)
    return values.where(values.notna(), "").astype(str).str.strip().to_numpy(dtype=object)


def pseudo_label_precision(pairs: MinedPairs, skus: Sequence[str | None] | np.ndarray) -> float:
    """Share of mined pairs whose two cards carry the same SKU, over pairs where both cards have one.

    NaN when no pair can be checked (no pairs, or no SKUs).
    """
    clean = _clean_skus(skus)
    a, b = clean[pairs.first], clean[pairs.second]
    known = (a != "") & (b != "")
    return float((a[known] == b[known]).mean()) if known.any() else float("nan")


def pseudo_labels(pairs: MinedPairs, n: int) -> np.ndarray:
    """Pseudo-SKU id per row: connected components of the pair graph (0, 1, ...); -1 for unpaired rows."""
    graph = coo_matrix(
        (np.ones(len(pairs), dtype=np.int8), (pairs.first, pairs.second)), shape=(n, n)
    ).tocsr()
    _, component = connected_components(graph, directed=False)
    degree = np.bincount(np.concatenate([pairs.first, pairs.second]), minlength=n)
    paired = degree > 0
    labels = np.full(n, -1, dtype=np.int64)
    # Renumber the components that hold a pair densely, in order of their first row.
    _, labels[paired] = np.unique(component[paired], return_inverse=True)
    return labels


class CrossModalMiner:
    """Pseudo-SKU labels for the database cards, mined from one channel (an encoder applied to a view).

    The channel's embeddings (e.g. title TF-IDF) are searched for mutual nearest neighbours across dealers
    (:func:`mine_pairs`); connected components of the pairs become the labels that train the *other*
    modality (``datamodule.label=sku`` with these labels), so no SKU column is needed. ``conf/mining/``
    holds the settings; ``mining=title_tfidf`` turns it on for a training run. ``singletons``: every card no pair
    was mined for becomes a pseudo-product of its own (for a sampler that pairs a lone card with another augmented
    view of itself, ``datamodule.sampler.views=true``); otherwise it is unlabelled (-1) and not trained on.
    """

    def __init__(
        self,
        encoder: str = "tfidf",
        view: str = "title",
        threshold: float = 0.5,
        k: int = 1,
        singletons: bool = False,
    ) -> None:
        if k < 1 or not -1.0 <= threshold <= 1.0:
            raise ConfigError(f"mining: k={k} must be >= 1 and threshold={threshold} a cosine in [-1, 1]")
        self.encoder = encoder
        self.view = view
        self.threshold = float(threshold)
        self.k = int(k)
        self.singletons = bool(singletons)

    def embed(self, database: Any, encoders: Mapping[str, Any], cache: Any = None) -> np.ndarray:
        """The database's vectors of the mining channel (fitted on the database's texts where needed)."""
        if self.encoder not in encoders:
            raise ConfigError(
                f"mining.encoder={self.encoder!r} is not a configured encoder "
                f"(known: {', '.join(sorted(encoders))}); fix mining.encoder"
            )
        encoder = encoders[self.encoder]
        inputs = database.image_paths() if self.view == "image" else database.texts(self.view)
        if encoder.needs_fit:
            encoder.fit(inputs)
        met = cache.get_or_compute(encoder, inputs) if cache is not None else encoder.encode(inputs)
        vectors = met.vectors
        # An image that did not decode is a NaN row: it pairs with nothing (cosine 0 everywhere).
        return np.nan_to_num(np.asarray(vectors, dtype=np.float32), nan=0.0)

    def labels(
        self, database: Any, encoders: Mapping[str, Any], cache: Any = None
    ) -> tuple[np.ndarray, dict[str, float]]:
        """(pseudo-SKU id per database card, -1 = unpaired; figures under ``mining/``, with the labels'
        precision against the catalog's SKUs where it has them: a check, never an input)."""
        vectors = self.embed(database, encoders, cache)
        pairs = mine_pairs(vectors, database.dealers, self.threshold, self.k)
        labels = pseudo_labels(pairs, len(database))
        report = {
            "mining/pairs": float(len(pairs)),
            "mining/labelled_cards": float((labels >= 0).sum()),
            "mining/classes": float(labels.max() + 1) if len(labels) else 0.0,
        }
        if self.singletons:
            lone = labels < 0
            labels[lone] = labels.max(initial=-1) + 1 + np.arange(int(lone.sum()))
        if database.skus is not None:
            report["mining/pair_precision"] = pseudo_label_precision(pairs, database.skus)
        return labels, report
