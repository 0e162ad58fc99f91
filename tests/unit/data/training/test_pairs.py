"""Pair sampling: label conventions, statistics, balancing, singletons, per-(seed, epoch) determinism, and
the same-class pairs of in-batch-negative losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prodmatch.data.training.pairs import PairSampler, encode_labels, pair_labels, positive_pairs
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
    np.testing.assert_array_equal(pair_labels(pairs.same, "different"), (~same_target).astype(np.float32))


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


def test_positive_pairs_are_same_class_rounds_without_repeats() -> None:
    codes = np.append(_codes([5, 4, 3, 2, 1, 6]), -1)  # class 4 has one card, the last card no class
    pool = np.arange(len(codes) - 3)  # three cards outside the pool
    pairs = positive_pairs(codes, pool, seed=0, epoch=0)
    assert pairs.same.all()
    assert np.isin(np.concatenate([pairs.anchor, pairs.other]), pool).all()
    assert (codes[pairs.anchor] == codes[pairs.other]).all() and (pairs.anchor != pairs.other).all()
    in_pool = np.bincount(codes[pool][codes[pool] >= 0])
    usable = np.flatnonzero(in_pool >= 2)
    np.testing.assert_array_equal(np.sort(pairs.anchor), np.sort(pool[np.isin(codes[pool], usable)]))
    # the first round holds each usable class once
    first_round = codes[pairs.anchor[: len(usable)]]
    assert sorted(first_round.tolist()) == usable.tolist()
    again, later = positive_pairs(codes, pool, 0, 0), positive_pairs(codes, pool, 0, 1)
    np.testing.assert_array_equal(again.other, pairs.other)
    assert not np.array_equal(later.anchor, pairs.anchor)
    with pytest.raises(CatalogError, match="two training cards"):
        positive_pairs(np.arange(5), np.arange(5), 0, 0)
