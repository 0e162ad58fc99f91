"""Pair sampling: label conventions, statistics, balancing, singletons and per-(seed, epoch) determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prodmatch.data.datamodule import PairDataModule, stratified_split
from prodmatch.data.pairs import PairSampler, encode_labels, pair_labels
from prodmatch.errors import CatalogError, ConfigError


def _codes(sizes: list[int], seed: int = 0) -> np.ndarray:
    """Shuffled target codes with the given number of cards per target."""
    codes = np.repeat(np.arange(len(sizes)), sizes)
    return np.random.default_rng(seed).permutation(codes)


def test_pair_labels_conventions_numpy_and_torch() -> None:
    same = np.array([True, False, True])
    np.testing.assert_array_equal(pair_labels(same, "same"), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(pair_labels(same, "different"), [0.0, 1.0, 0.0])
    t = torch.tensor([True, False])
    assert pair_labels(t, "different").tolist() == [0.0, 1.0]
    assert pair_labels(t, "same").dtype == torch.float32
    with pytest.raises(ConfigError):
        pair_labels(same, "maybe")


def test_encode_labels_round_trip() -> None:
    values = np.array(["b", "a", "c", "a"], dtype=object)
    codes, names = encode_labels(values)
    assert codes.dtype == np.int64
    np.testing.assert_array_equal(names[codes], values)


@pytest.mark.parametrize("positive_prob", [0.5, 0.2])
def test_positive_share_and_target_agreement(positive_prob: float) -> None:
    codes = _codes([3000, 2500, 2000, 1500, 1000])  # 10k anchors
    pairs = PairSampler(codes, positive_prob=positive_prob, seed=1).sample(epoch=0)
    assert len(pairs) == len(codes)
    assert pairs.anchor.dtype == np.int64 and pairs.other.dtype == np.int64
    assert abs(pairs.same.mean() - positive_prob) < 0.02
    # one pair per card: every card is an anchor exactly once
    np.testing.assert_array_equal(np.sort(pairs.anchor), np.arange(len(codes)))
    same_target = codes[pairs.anchor] == codes[pairs.other]
    np.testing.assert_array_equal(same_target, pairs.same)
    assert not np.any(pairs.anchor == pairs.other)  # a positive is another card, never the anchor itself
    np.testing.assert_array_equal(pairs.labels("different"), (~same_target).astype(np.float32))


def test_negatives_are_uniform_over_other_cards() -> None:
    codes = _codes([6000, 3000, 1000])
    pairs = PairSampler(codes, positive_prob=0.0, seed=0).sample(epoch=0)
    assert not pairs.same.any()
    from_big = codes[pairs.anchor] == 0
    partner_target = codes[pairs.other[from_big]]
    # anchors of target 0 draw partners from 3000 + 1000 cards: 75 % of target 1
    assert abs((partner_target == 1).mean() - 0.75) < 0.03


def test_balance_targets_equalises_anchor_targets() -> None:
    codes = _codes([9000, 800, 150, 50])
    plain = PairSampler(codes, seed=0).sample(0)
    balanced = PairSampler(codes, balance_targets=True, seed=0).sample(0, n=10_000)
    shares = np.bincount(codes[balanced.anchor], minlength=4) / len(balanced)
    np.testing.assert_allclose(shares, 0.25, atol=0.02)
    assert np.bincount(codes[plain.anchor])[0] == 9000
    np.testing.assert_array_equal(codes[balanced.anchor] == codes[balanced.other], balanced.same)


def test_singleton_target_positive_falls_back_to_negative() -> None:
    codes = np.array([0, 1, 1, 1, 2, 2])  # target 0 has one card
    pairs = PairSampler(codes, positive_prob=1.0, seed=3).sample(0, n=600)
    from_single = codes[pairs.anchor] == 0
    assert from_single.any()
    assert not pairs.same[from_single].any()
    assert pairs.singleton_fallbacks == int(from_single.sum())
    assert pairs.same[~from_single].all()
    np.testing.assert_array_equal(codes[pairs.anchor] == codes[pairs.other], pairs.same)


def test_pool_restricts_both_sides() -> None:
    codes = _codes([50, 50, 50])
    pool = np.arange(0, 150, 2)
    pairs = PairSampler(codes, pool=pool, seed=0).sample(0, n=1000)
    assert np.isin(pairs.anchor, pool).all() and np.isin(pairs.other, pool).all()
    np.testing.assert_array_equal(codes[pairs.anchor] == codes[pairs.other], pairs.same)


def test_deterministic_per_seed_and_epoch() -> None:
    codes = _codes([40, 30, 20, 10])
    sampler = PairSampler(codes, seed=7)
    a, b = sampler.sample(3), PairSampler(codes, seed=7).sample(3)
    for field in ("anchor", "other", "same"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    c = sampler.sample(4)
    assert not np.array_equal(a.other, c.other)
    d = PairSampler(codes, seed=8).sample(3)
    assert not np.array_equal(a.other, d.other)


def test_pairs_per_epoch_above_and_below_pool_size() -> None:
    codes = _codes([10, 10])
    sampler = PairSampler(codes, seed=0)
    assert len(sampler.sample(0, n=5)) == 5
    many = sampler.sample(0, n=45)
    # every card anchors twice or three times: whole passes over the pool, then a partial one
    assert set(np.bincount(many.anchor, minlength=20).tolist()) <= {2, 3}


def test_needs_two_targets_and_valid_probability() -> None:
    with pytest.raises(CatalogError, match="two targets"):
        PairSampler(np.zeros(10, dtype=np.int64))
    with pytest.raises(ConfigError):
        PairSampler(_codes([5, 5]), positive_prob=1.5)


# --------------------------------------------------------------------------- train / validation split


def test_stratified_split_without_leakage() -> None:
    codes = _codes([40, 21, 10, 1])
    train, val = stratified_split(codes, 0.1, seed=0)
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(codes)))
    np.testing.assert_array_equal(
        np.bincount(codes[val], minlength=4), [4, 2, 1, 0]
    )  # single card: train only
    again, _ = stratified_split(codes, 0.1, seed=0)
    other, _ = stratified_split(codes, 0.1, seed=1)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)
    with pytest.raises(ConfigError):
        stratified_split(codes, 1.0, seed=0)


# --------------------------------------------------------------------------- datamodule on the tiny catalog


@pytest.fixture(scope="module")
def database(tiny_catalogs):
    return tiny_catalogs[1]


def test_datamodule_split_and_targets(database) -> None:
    dm = PairDataModule(database, image_size=32, batch_size=8, num_workers=0, seed=0)
    assert list(dm.target_names) == sorted(set(database.targets))
    assert dm.num_classes == len(dm.target_names)
    np.testing.assert_array_equal(dm.target_names[dm.target_codes], database.targets)
    train, val = dm.train_indices, dm.val_indices
    assert np.intersect1d(train, val).size == 0 and len(train) + len(val) == len(database)
    counts = np.bincount(dm.target_codes, minlength=dm.num_classes)
    np.testing.assert_array_equal(
        np.bincount(dm.target_codes[val], minlength=dm.num_classes), np.floor(counts * 0.1 + 0.5)
    )
    # train pairs never touch validation cards and vice versa; every train card anchors once per epoch
    p0, p1 = dm.pairs(0), dm.pairs(1)
    assert np.isin(np.concatenate([p0.anchor, p0.other]), train).all()
    np.testing.assert_array_equal(np.sort(p0.anchor), train)
    assert not np.array_equal(p0.other, p1.other)
    v = dm.pairs(0, "val")
    assert np.isin(np.concatenate([v.anchor, v.other]), val).all()
    np.testing.assert_array_equal(dm.pairs(5, "val").other, v.other)  # fixed validation pairs


def test_datamodule_image_payload(database) -> None:
    dm = PairDataModule(database, image_size=32, batch_size=8, num_workers=0, augment=True)
    loader = dm.train_dataloader()
    assert len(loader.dataset) == len(dm.train_indices)
    batch = next(iter(loader))
    assert batch["a"].shape == (8, 3, 32, 32) and batch["b"].shape == (8, 3, 32, 32)
    assert batch["a"].dtype == torch.float32 and batch["same"].dtype == torch.bool
    assert batch["target_a"].dtype == torch.int64
    torch.testing.assert_close(batch["same"], batch["target_a"] == batch["target_b"])
    assert set(batch) >= {"sku_a", "sku_b"}  # the synthetic database has skus
    val = next(iter(dm.val_dataloader()))
    assert val["a"].shape[1:] == (3, 32, 32)


def test_datamodule_text_payload_and_pairs_per_epoch(database) -> None:
    dm = PairDataModule(
        database,
        modality="text",
        text_view="title_cat",
        batch_size=4,
        num_workers=0,
        pairs_per_epoch=20,
        balance_targets=True,
    )
    dataset = dm.train_dataloader().dataset
    assert len(dataset) == 20
    texts = database.texts("title_cat")
    item = dataset[3]
    assert item["a"] == texts[dataset.pairs.anchor[3]] and item["b"] == texts[dataset.pairs.other[3]]
    assert item["target_a"] == dm.target_codes[dataset.pairs.anchor[3]]
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch["a"], list) and all(isinstance(t, str) for t in batch["a"])
    assert len(batch["b"]) == 4 and batch["same"].shape == (4,)


def test_datamodule_rejects_bad_settings(database) -> None:
    with pytest.raises(ConfigError, match="modality"):
        PairDataModule(database, modality="audio")
    with pytest.raises(ConfigError, match="text_view"):
        PairDataModule(database, modality="text", text_view="image")
    with pytest.raises(ConfigError, match="pairs_per_epoch"):
        PairDataModule(database, pairs_per_epoch=0)
