"""Label-free positives: cross-modal mining of database cards that are likely the same product.

Cards of one modality's embeddings (e.g. title TF-IDF) that are *mutual* nearest neighbours across dealers,
with a cosine of at least a threshold, become pseudo-positive pairs for training the other modality (e.g. the
image model). A shop lists a product once, so the nearest card of another dealer is the natural candidate;
mutuality and the threshold trade pairs for precision. Two scopes: the nearest card among *all* other dealers
(:func:`mine_pairs`; a matching, so a product sold by five dealers yields at most two pairs) or, for every pair of
dealers, the nearest card *of that dealer* (:func:`mine_dealer_pairs`; every dealer pair can contribute, so a
product's cards at all its dealers link up). Pairs become pseudo-SKU ids for the class-batched datamodule modes
(``PairDataModule(label="sku", labels=...)``): connected components (:func:`pseudo_labels`) or, since a shop
lists a product once, groups that never hold two cards of one dealer (:func:`one_per_dealer_labels`). Only
the embeddings and the dealer column are read: never a SKU (that is only the figures' check).
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


def mine_dealer_pairs(
    embeddings: np.ndarray,
    dealers: Sequence[str] | np.ndarray,
    threshold: float = 0.5,
    chunk_size: int = 1024,
) -> MinedPairs:
    """Pairs of cards of two dealers that are each other's nearest card *of the other's dealer*, cosine >= threshold.

    Every dealer pair is searched on its own, so a product listed by d dealers can give up to d(d-1)/2 pairs
    (where :func:`mine_pairs` with ``k=1`` gives at most d/2): the coverage that mutual nearest neighbours over
    all dealers lack, at the same mutuality.
    """
    if not -1.0 <= threshold <= 1.0:
        raise ConfigError(f"mining threshold={threshold} is not a cosine in [-1, 1]; use e.g. 0.5")
    x = l2_normalize(embeddings)
    codes = _dealer_codes(dealers, len(x))
    n, n_dealers = len(x), int(codes.max(initial=-1)) + 1
    members = [np.flatnonzero(codes == d) for d in range(n_dealers)]
    best = np.full((n, n_dealers), -1, dtype=np.int64)  # each row's nearest card of each dealer
    best_sim = np.full((n, n_dealers), -np.inf, dtype=np.float32)
    for start in range(0, n, chunk_size):
        sims = x[start : start + chunk_size] @ x.T
        for d, cols in enumerate(members):
            # a stable argmax: equal scores go to the lower row, as in _top_k
            pick = np.argmax(sims[:, cols], axis=1)
            best[start : start + chunk_size, d] = cols[pick]
            best_sim[start : start + chunk_size, d] = sims[np.arange(len(sims)), cols[pick]]
    rows = np.repeat(np.arange(n, dtype=np.int64), n_dealers)
    cols, sims = best.ravel(), best_sim.ravel()
    other = np.tile(np.arange(n_dealers), n) != codes[rows]
    keep = other & (cols >= 0) & (sims >= threshold)
    rows, cols, sims = rows[keep], cols[keep], sims[keep]
    # mutual: the row is its partner's nearest card of the row's dealer; each pair once, as first < second
    mutual = (best[cols, codes[rows]] == rows) & (rows < cols)
    return MinedPairs(rows[mutual], cols[mutual], sims[mutual].astype(np.float32))


def one_per_dealer_labels(
    pairs: MinedPairs, dealers: Sequence[str] | np.ndarray, max_size: int | None = None
) -> np.ndarray:
    """Pseudo-SKU id per row from the pairs, best score first, joining two groups only when no dealer is in both
    (a shop lists a product once, so a group with two cards of one dealer holds two products) and the group stays
    within ``max_size`` cards; -1 for rows left in no group. Chains of pairs can no longer merge products.
    """
    dealers = np.asarray(dealers, dtype=object).ravel()
    codes = _dealer_codes(dealers, len(dealers))
    n = len(codes)
    if int(codes.max(initial=0)) >= 63:
        raise ConfigError(
            f"mining one_per_dealer supports up to 63 dealers, the catalog has {int(codes.max()) + 1}; "
            "set mining.grouping=components"
        )
    parent = np.arange(n)
    dealer_mask = np.left_shift(np.int64(1), codes)  # the dealers in each group, one bit each
    size = np.ones(n, dtype=np.int64)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving
            i = parent[i]
        return int(i)

    # a sequential greedy merge: each decision depends on the groups built so far
    for e in np.argsort(-pairs.score, kind="stable"):
        a, b = root(int(pairs.first[e])), root(int(pairs.second[e]))
        if a == b or dealer_mask[a] & dealer_mask[b]:
            continue
        if max_size is not None and size[a] + size[b] > max_size:
            continue
        parent[b], dealer_mask[a], size[a] = a, dealer_mask[a] | dealer_mask[b], size[a] + size[b]
    roots = np.array([root(i) for i in range(n)], dtype=np.int64)
    grouped = np.bincount(roots, minlength=n)[roots] > 1
    labels = np.full(n, -1, dtype=np.int64)
    _, labels[grouped] = np.unique(roots[grouped], return_inverse=True)
    return labels


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


def pseudo_label_purity(labels: np.ndarray, skus: Sequence[str | None] | np.ndarray) -> float:
    """Share of card pairs within one pseudo-SKU that carry the same SKU (both known); NaN when none can be checked."""
    clean = _clean_skus(skus)
    known = (np.asarray(labels) >= 0) & (clean != "")
    frame = pd.DataFrame({"label": np.asarray(labels)[known], "sku": clean[known]})
    pairs_in = frame.groupby("label").size()
    pairs_same = frame.groupby(["label", "sku"]).size()
    total = int((pairs_in * (pairs_in - 1) // 2).sum())
    return float((pairs_same * (pairs_same - 1) // 2).sum() / total) if total else float("nan")


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


SCOPES = ("all_dealers", "each_dealer")
GROUPINGS = ("components", "one_per_dealer")


class CrossModalMiner:
    """Pseudo-SKU labels for the database cards, mined from one channel (an encoder applied to a view).

    The channel's embeddings (e.g. title TF-IDF) are searched for mutual nearest neighbours across dealers:
    ``scope=all_dealers`` the nearest cards of any other dealer (:func:`mine_pairs`, ``k`` of them),
    ``scope=each_dealer`` the nearest card of each other dealer (:func:`mine_dealer_pairs`). The pairs become the
    labels that train the *other* modality (``datamodule.label=sku`` with these labels), so no SKU column is
    needed: ``grouping=components`` their connected components, ``grouping=one_per_dealer`` groups of at most one
    card per dealer and ``max_group`` cards (:func:`one_per_dealer_labels`). ``conf/mining/`` holds the settings;
    ``mining=title_tfidf`` turns it on for a training run. ``singletons``: every card no pair was mined for
    becomes a pseudo-product of its own (for a sampler that pairs a lone card with another augmented view of
    itself, ``datamodule.sampler.views=true``); otherwise it is unlabelled (-1) and not trained on.
    """

    def __init__(
        self,
        encoder: str = "tfidf",
        view: str = "title",
        threshold: float = 0.5,
        k: int = 1,
        singletons: bool = False,
        scope: str = "all_dealers",
        grouping: str = "components",
        max_group: int | None = None,
    ) -> None:
        if k < 1 or not -1.0 <= threshold <= 1.0:
            raise ConfigError(f"mining: k={k} must be >= 1 and threshold={threshold} a cosine in [-1, 1]")
        if scope not in SCOPES or grouping not in GROUPINGS:
            raise ConfigError(
                f"mining: scope={scope!r} must be one of {', '.join(SCOPES)} and grouping={grouping!r} one of "
                f"{', '.join(GROUPINGS)}"
            )
        if max_group is not None and (grouping != "one_per_dealer" or max_group < 2):
            raise ConfigError(
                f"mining.max_group={max_group} needs grouping=one_per_dealer and a size >= 2 (or null: no cap)"
            )
        self.encoder = encoder
        self.view = view
        self.threshold = float(threshold)
        self.k = int(k)
        self.singletons = bool(singletons)
        self.scope = scope
        self.grouping = grouping
        self.max_group = max_group

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
        dealers = database.dealers
        if self.scope == "each_dealer":
            pairs = mine_dealer_pairs(vectors, dealers, self.threshold)
        else:
            pairs = mine_pairs(vectors, dealers, self.threshold, self.k)
        if self.grouping == "one_per_dealer":
            labels = one_per_dealer_labels(pairs, dealers, self.max_group)
        else:
            labels = pseudo_labels(pairs, len(database))
        report = {
            "mining/pairs": float(len(pairs)),
            "mining/labelled_cards": float((labels >= 0).sum()),
            "mining/coverage": float((labels >= 0).mean()) if len(labels) else 0.0,
            "mining/classes": float(labels.max() + 1) if len(labels) else 0.0,
        }
        # The figures' check against the catalog's SKUs, after the labels are fixed: nothing above reads them.
        skus = database.skus
        if skus is not None:
            report["mining/pair_precision"] = pseudo_label_precision(pairs, skus)
            report["mining/label_purity"] = pseudo_label_purity(labels, skus)
        if self.singletons:
            lone = labels < 0
            labels[lone] = labels.max(initial=-1) + 1 + np.arange(int(lone.sum()))
        return labels, report
