"""Product-level protocol: split the products (SKUs), not the cards, into train / val / test groups by seed.

Every card of a product lands in the same group, in both catalogs, so a model trained on the "train" products
is scored on query cards of products it never saw. The split depends only on the set of SKUs and the seed:
unique SKUs are sorted before the seeded permutation, so reordering (or subsetting the other catalog's) rows
changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prodmatch.errors import ConfigError

SPLITS = ("train", "val", "test")
NO_SKU = "none"  # the split label of a card without a SKU: it belongs to no product group
_SPLIT_STREAM = 2  # appended to the seed, so this stream never equals the datamodule's or the pair sampler's


def _clean(skus: Sequence[str | None] | np.ndarray) -> np.ndarray:
    """SKUs as stripped strings, '' where missing."""
    values = pd.Series(np.asarray(skus, dtype=object).ravel(), dtype=object)
    return values.where(values.notna(), "").astype(str).str.strip().to_numpy(dtype=object)


def check_fractions(fractions: Sequence[float]) -> np.ndarray:
    """The (train, val, test) shares as an array; a one-line ConfigError naming retrieval.split_fractions (which
    datamodule.split_fractions follows) when they are not three non-negative shares summing to 1."""
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or (f < 0).any() or not np.isclose(f.sum(), 1.0):
        raise ConfigError(
            f"retrieval.split_fractions={list(fractions)} must be three non-negative shares (train, val, test) "
            "summing to 1; set e.g. retrieval.split_fractions=[0.6,0.2,0.2] (datamodule.split_fractions follows it)"
        )
    return f


def sku_groups(
    skus: Sequence[str | None] | np.ndarray, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0
) -> dict[str, str]:
    """{sku: "train" | "val" | "test"} for the unique non-empty SKUs; group sizes are rounded shares of them."""
    f = check_fractions(fractions)
    unique = np.unique([s for s in _clean(skus) if s])  # sorted: independent of row order
    order = np.random.default_rng((int(seed), _SPLIT_STREAM)).permutation(len(unique))
    bounds = np.floor(np.cumsum(f)[:2] * len(unique) + 0.5).astype(np.int64)
    group = np.empty(len(unique), dtype=object)
    group[order] = np.repeat(np.array(SPLITS, dtype=object), np.diff([0, *bounds, len(unique)]))
    return dict(zip(unique.tolist(), group.tolist(), strict=True))


@dataclass(frozen=True)
class ProductSplit:
    """The products (SKUs) of a run in train / val / test groups: drawn once, by the task, over the database's
    SKUs, and handed to training and to scoring alike, so the two cannot disagree.

    ``groups`` maps each SKU to its group; :meth:`of` gives any catalog's cards their group (``"none"`` for a
    card without a SKU, or with one the database does not have: it has no listing to find).
    """

    groups: Mapping[str, str]
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 0

    @classmethod
    def draw(
        cls,
        skus: Sequence[str | None] | np.ndarray,
        fractions: Sequence[float] = (0.6, 0.2, 0.2),
        seed: int = 0,
    ) -> ProductSplit:
        """The split of the unique non-empty ``skus`` (the database's) by ``fractions`` and ``seed``."""
        shares = tuple(float(f) for f in check_fractions(fractions))
        return cls(sku_groups(skus, shares, seed), shares, int(seed))

    def of(self, skus: Sequence[str | None] | np.ndarray) -> np.ndarray:
        """Each card's group ("train", "val", "test"; "none" without a SKU or for one outside the split)."""
        labels = pd.Series(_clean(skus), dtype=object).map(dict(self.groups)).fillna(NO_SKU)
        return labels.to_numpy(dtype=object)


def product_split(
    skus: Sequence[str | None] | np.ndarray,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    *,
    products: Sequence[str | None] | np.ndarray | None = None,
) -> np.ndarray:
    """Split label per card ("train", "val", "test"; "none" for a card without SKU) over unique SKUs.

    ``products``: the SKUs whose groups are drawn (default: ``skus`` themselves). Pass the database's SKUs
    when splitting the queries, so that the same SKU gets the same group in both catalogs.
    """
    return ProductSplit.draw(skus if products is None else products, fractions, seed).of(skus)


def split_catalogs(
    query_skus: Sequence[str | None] | np.ndarray,
    db_skus: Sequence[str | None] | np.ndarray,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(query split, database split), both drawn over the database's SKUs (one :class:`ProductSplit`)."""
    split = ProductSplit.draw(db_skus, fractions, seed)
    return split.of(query_skus), split.of(db_skus)
