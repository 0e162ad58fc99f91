"""Product split: SKUs (not cards) go to train / val / test by seed, stable under row order, same in both catalogs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prodmatch.data.splits import NO_SKU, product_split, sku_groups, split_catalogs
from prodmatch.errors import ConfigError


def _skus(n_products: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cards = np.repeat([f"P{i:03d}" for i in range(n_products)], rng.integers(1, 6, n_products))
    return np.append(rng.permutation(cards), ["", None]).astype(object)


def test_every_card_of_a_product_shares_its_split_and_shares_are_of_products():
    skus = _skus()
    split = product_split(skus, (0.6, 0.2, 0.2), seed=0)
    assert set(split) == {"train", "val", "test", NO_SKU}
    assert (split[-2:] == NO_SKU).all()
    frame = pd.DataFrame({"sku": skus[:-2], "split": split[:-2]})
    assert (frame.groupby("sku")["split"].nunique() == 1).all()
    per_product = frame.drop_duplicates("sku")["split"].value_counts()
    assert per_product.to_dict() == {"train": 30, "val": 10, "test": 10}


def test_split_is_seeded_and_independent_of_row_order():
    skus = _skus()
    split = product_split(skus, seed=3)
    perm = np.random.default_rng(1).permutation(len(skus))
    np.testing.assert_array_equal(product_split(skus[perm], seed=3), split[perm])
    np.testing.assert_array_equal(product_split(list(skus), seed=3), split)
    assert not np.array_equal(product_split(skus, seed=4), split)
    # whitespace around a SKU does not make it another product
    padded = np.array([f" {s} " if s else s for s in skus], dtype=object)
    np.testing.assert_array_equal(product_split(padded, seed=3), split)


def test_two_catalogs_agree_on_every_shared_sku():
    db = _skus(seed=0)
    queries = np.concatenate([db[:40], np.array(["Q-only", " P001 "], dtype=object)])
    q_split, db_split = split_catalogs(queries, db, seed=7)
    np.testing.assert_array_equal(db_split, product_split(db, seed=7))  # what the datamodule computes
    groups = sku_groups(db, seed=7)
    for sku, label in zip(queries[:40], q_split[:40], strict=True):
        assert label == (groups[sku] if sku else NO_SKU)
    assert q_split[-2] == NO_SKU  # no database listing: no product group
    assert q_split[-1] == db_split[list(db).index("P001")]


def test_edge_cases_and_bad_fractions():
    assert product_split([], seed=0).shape == (0,)
    assert list(product_split(["", None], seed=0)) == [NO_SKU, NO_SKU]
    only_train = product_split(["a", "b", "c"], fractions=(1.0, 0.0, 0.0))
    assert list(only_train) == ["train"] * 3
    for bad in [(0.5, 0.5), (0.7, 0.2, 0.2), (1.2, -0.1, -0.1)]:
        with pytest.raises(ConfigError, match="fractions"):
            product_split(["a"], fractions=bad)
