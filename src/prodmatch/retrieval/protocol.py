"""The scoring protocols: the study's ``category`` protocol and the product-level ``product`` one.

``retrieval.protocol=category`` (the default) scores every query card with the study's metric keys.

``retrieval.protocol=product`` splits the products (SKUs), not the cards, into train / val / test groups by seed
(a :class:`~prodmatch.data.splits.ProductSplit` drawn over the database's SKUs, :func:`draw_split`; a training
task hands the same object to its datamodule) and gives every query card its product's group in a ``split``
column; ``"none"`` marks a card without a SKU or with a SKU no database card has (it has nothing to find).
Scoring then gives the headline keys over the query cards of the test products, which no model saw in
training, and the same keys prefixed ``seen/`` over those of the train and val products; cards of no group
count in neither. The match threshold (and, with ``concat_weights=auto``, the concat weights) is chosen on the
val products' query cards, which the ``seen/`` figures therefore include; the headline figures never do. ``matches.csv`` carries the
group as ``query_split``, so the headline figures can be recomputed from it. A run with no query card of a test
product has nothing to score: it is an error naming the cause, never NaN figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prodmatch.data.catalog import Catalog
from prodmatch.data.splits import NO_SKU, SPLITS, ProductSplit
from prodmatch.errors import ConfigError
from prodmatch.layout import SEEN

PROTOCOLS = ("category", "product")
SPLIT_COLUMN = "split"  # the query catalog's column holding each card's product group
UNSEEN = "test"  # the group of the headline figures
THRESHOLD_GROUP = "val"  # the group the match threshold (and the concat weights) are chosen on
GROUPS = (*SPLITS, NO_SKU)


def _require_skus(catalog: Catalog, role: str) -> np.ndarray:
    if catalog.skus is None:
        raise ConfigError(
            f"retrieval.protocol=product needs a sku column in both catalogs, and the {role} CSV "
            f"({catalog.name}) has none; add it or use retrieval.protocol=category"
        )
    return catalog.skus


def draw_split(database: Catalog, fractions: Sequence[float], seed: int) -> ProductSplit:
    """The products of the database in train / val / test groups (what training and scoring both use)."""
    return ProductSplit.draw(_require_skus(database, "database"), fractions, seed)


def assign_split(queries: Catalog, split: ProductSplit) -> Catalog:
    """The query cards with their product's group in the ``split`` column.

    Nothing to score (no query card of a test product) is a one-line ConfigError naming the cause: no shared
    SKUs, or split fractions that leave the test group empty.
    """
    q_split = split.of(_require_skus(queries, "query"))
    if not (q_split == UNSEEN).any():
        raise ConfigError(_nothing_to_score(q_split, split))
    return queries.with_column(SPLIT_COLUMN, q_split)


def _nothing_to_score(q_split: np.ndarray, split: ProductSplit) -> str:
    """Why no query card belongs to a test product, and the fix."""
    if (q_split == NO_SKU).all():
        return (
            "retrieval.protocol=product has nothing to score: no query card has a SKU that a database card has "
            f"({len(q_split)} query cards); fill the sku column of both catalogs, or use retrieval.protocol=category"
        )
    groups = split.groups
    tested = sum(group == UNSEEN for group in groups.values())
    return (
        f"retrieval.protocol=product has nothing to score: retrieval.split_fractions={list(split.fractions)} puts "
        f"{tested} of {len(groups)} database products in the test group, and no query card is of one; give the "
        "test share more room, e.g. retrieval.split_fractions=[0.6,0.2,0.2]"
    )


def check_scored(split: np.ndarray) -> None:
    """A one-line ConfigError when no query card of a test product is left (all dropped while embedding)."""
    if not (np.asarray(split, dtype=object) == UNSEEN).any():
        raise ConfigError(
            "retrieval.protocol=product has nothing to score: no query card of a test product is left after the "
            "cards whose image could not be decoded were dropped (data/dropped/... in the log); fix those images"
        )


def query_split(queries: Catalog) -> np.ndarray | None:
    """The product group of each query card, or None under the category protocol (no ``split`` column)."""
    if SPLIT_COLUMN not in queries.frame.columns:
        return None
    return queries.frame[SPLIT_COLUMN].to_numpy(dtype=object)


def scored_groups(split: np.ndarray) -> dict[str, np.ndarray]:
    """{key prefix: query mask}: "" for the test products' queries (headline), "seen/" for train and val."""
    split = np.asarray(split, dtype=object)
    return {"": split == UNSEEN, SEEN: np.isin(split, ("train", THRESHOLD_GROUP))}


def group_counts(split: np.ndarray) -> dict[str, int]:
    """Query cards per group (train, val, test, none)."""
    split = np.asarray(split, dtype=object)
    return {group: int((split == group).sum()) for group in GROUPS}
