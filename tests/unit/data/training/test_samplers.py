"""Samplers: the distinct-card rule (k distinct cards per product per batch, cross-dealer first, the same card twice
only as views when asked), per-(seed, epoch) determinism, m per class, views, positives and the config group."""

from __future__ import annotations

import numpy as np
import pytest

from prodmatch.data.training.samplers import DistinctCards, MPerClass, PairBatches, Positives, Views
from prodmatch.errors import ConfigError


def _catalog(sizes: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(class codes, dealers) of shuffled cards: product p has sizes[p] cards, each from another dealer (d0, d1,
    ...), and its first card a second one from dealer d0 (a same-dealer duplicate) when it has four or more."""
    codes, dealers = [], []
    for product, size in enumerate(sizes):
        names = [f"d{i}" for i in range(size)]
        if size >= 4:
            names[-1] = "d0"
        codes += [product] * size
        dealers += names
    order = np.random.default_rng(seed).permutation(len(codes))
    return np.asarray(codes, dtype=np.int64)[order], np.asarray(dealers, dtype=object)[order]


SIZES = [1, 2, 3, 4, 5, 2, 1, 3, 2, 4, 2, 2, 5, 1, 3, 2]


def _batches(draw, batch_size: int) -> list[np.ndarray]:
    assert len(draw) % batch_size == 0
    return [draw.first[i : i + batch_size] for i in range(0, len(draw), batch_size)]


@pytest.mark.parametrize("k", [2, 3])
def test_distinct_cards_puts_k_distinct_cards_of_each_product_in_a_batch(k: int) -> None:
    codes, dealers = _catalog(SIZES)
    pool = np.arange(len(codes))
    draw = DistinctCards(k=k).draw(codes, pool, seed=0, epoch=0, batch_size=2 * k, dealers=dealers)
    assert len(draw) > 0
    np.testing.assert_array_equal(draw.labels, codes[draw.first])
    for batch in _batches(draw, 2 * k):
        assert len(np.unique(batch)) == len(batch)  # no card twice
        products, counts = np.unique(codes[batch], return_counts=True)
        assert len(products) == 2 and (counts == k).all()  # two products, k cards each
        rows = codes[batch]
        assert (rows[0::k] == rows[k - 1 :: k]).all()  # a product's k rows side by side
    # a product with fewer than k cards is left out; every other product is visited, each of its cards seen
    sizes = np.bincount(codes)
    trained = np.unique(codes[draw.first])
    assert set(trained) <= set(np.flatnonzero(sizes >= k))


def test_distinct_cards_sees_every_card_of_a_product_over_its_visits() -> None:
    codes, dealers = _catalog([5, 5, 5, 5])
    draw = DistinctCards(k=2).draw(codes, np.arange(len(codes)), 0, 0, 4, dealers)
    # each product: ceil(5 / 2) = 3 visits of 2 cards; 12 visits make 6 batches of 2 products
    assert len(draw) == 24
    for product in range(4):
        assert set(draw.first[codes[draw.first] == product]) == set(np.flatnonzero(codes == product))


def test_distinct_cards_takes_cross_dealer_positives_first() -> None:
    # product 0: dealers d0, d1, d0 (a same-dealer pair) -> its first visit always pairs d0 with d1
    codes = np.array([0, 0, 0, 1, 1, 2, 2, 3, 3])
    dealers = np.array(["d0", "d1", "d0", "d0", "d1", "d0", "d1", "d0", "d1"], dtype=object)
    for epoch in range(20):
        visits, keys = DistinctCards(k=2).visits(codes, np.arange(9), np.random.default_rng(epoch), dealers)
        first_visit = visits[(keys[:, 0] == 0) & (keys[:, 1] == 0)][0]
        assert set(dealers[first_visit]) == {"d0", "d1"}


def test_the_same_card_twice_only_as_views_when_asked() -> None:
    codes, dealers = _catalog(SIZES)
    pool = np.arange(len(codes))
    plain = DistinctCards(k=2).draw(codes, pool, 0, 0, 4, dealers)
    singles = np.flatnonzero(np.bincount(codes) == 1)
    assert not np.isin(codes[plain.first], singles).any()  # single-card products are left out
    views = DistinctCards(k=2, views=True).draw(codes, pool, 0, 0, 4, dealers)
    repeated = 0
    for batch in _batches(views, 4):
        for i in (0, 2):  # each product's pair of rows
            a, b = batch[i], batch[i + 1]
            assert codes[a] == codes[b]
            if a == b:
                repeated += 1
                assert np.bincount(codes)[codes[a]] == 1  # only a product with one card repeats it
    assert repeated > 0 and set(singles) <= set(codes[views.first])


def test_distinct_cards_is_deterministic_per_seed_and_epoch() -> None:
    codes, dealers = _catalog(SIZES * 4)
    pool = np.arange(len(codes))
    sampler = DistinctCards(k=2)
    first = sampler.draw(codes, pool, 7, 3, 8, dealers)
    np.testing.assert_array_equal(first.first, sampler.draw(codes, pool, 7, 3, 8, dealers).first)
    assert not np.array_equal(first.first, sampler.draw(codes, pool, 7, 4, 8, dealers).first)
    assert not np.array_equal(first.first, sampler.draw(codes, pool, 8, 3, 8, dealers).first)


def test_distinct_cards_uses_only_the_pool_and_labelled_cards() -> None:
    codes, dealers = _catalog(SIZES)
    codes = codes.copy()
    codes[:5] = -1  # unlabelled
    pool = np.arange(3, len(codes))
    draw = DistinctCards(k=2, views=True).draw(codes, pool, 0, 0, 4, dealers)
    assert np.isin(draw.first, pool).all() and (codes[draw.first] >= 0).all()


@pytest.mark.parametrize(
    ("sampler", "batch_size", "key"),
    [(DistinctCards(k=3), 8, "datamodule.sampler.k=3"), (DistinctCards(k=2), 2, "datamodule.sampler.k=2"),
     (DistinctCards(k=4), 400, "lower datamodule.batch_size"), (MPerClass(m=3), 8, "datamodule.sampler.m=3")],
)  # fmt: skip
def test_sampler_checks_are_one_config_line(sampler, batch_size: int, key: str) -> None:
    codes, _ = _catalog(SIZES)
    with pytest.raises(ConfigError) as info:
        sampler.check(codes, np.arange(len(codes)), batch_size)
    assert key in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="datamodule.sampler.k=1"):
        DistinctCards(k=1)


def test_m_per_class_is_seeded_per_epoch_and_leaves_numpy_alone() -> None:
    codes, _ = _catalog(SIZES * 2)
    pool = np.arange(len(codes))
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    a = MPerClass(m=2).draw(codes, pool, 0, 0, 8)
    assert np.random.random() == before  # the caller's global RNG stream is untouched
    np.testing.assert_array_equal(a.first, MPerClass(m=2).draw(codes, pool, 0, 0, 8).first)
    assert not np.array_equal(a.first, MPerClass(m=2).draw(codes, pool, 0, 1, 8).first)
    for batch in _batches(a, 8):
        assert (np.bincount(codes[batch])[np.unique(codes[batch])] == 2).all()


def test_views_pairs_each_card_with_itself_and_positives_two_cards_of_a_class() -> None:
    codes, _ = _catalog(SIZES)
    pool = np.arange(len(codes))
    views = Views().draw(codes, pool, 0, 0, 4)
    assert sorted(views.first) == list(pool) and (views.first == views.second).all()
    np.testing.assert_array_equal(views.labels, views.first)
    positives = Positives().draw(codes, pool, 0, 0, 4)
    assert (codes[positives.first] == codes[positives.second]).all()
    assert (positives.first != positives.second).all()
    assert PairBatches().validation(np.zeros(4, dtype=np.int64), np.arange(4), 0, 4) is None  # one class


@pytest.mark.parametrize("node", ["pairs", "m_per_class", "distinct_cards", "views", "positives"])
def test_each_sampler_node_builds_its_sampler(compose_cfg, node: str) -> None:
    from hydra.utils import instantiate

    # an experiment that sets no sampler argument (demo's pairs_per_epoch belongs to the pairs sampler)
    cfg = compose_cfg("train", ["experiment=product_image_supcon", f"datamodule/sampler={node}"])
    sampler = instantiate(cfg.datamodule.sampler)
    assert sampler.name == node
