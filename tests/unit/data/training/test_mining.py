"""Cross-modal mining: mutual nearest neighbours across dealers, pseudo-label precision and pseudo-SKUs."""

from __future__ import annotations

import numpy as np
import pytest

from prodmatch.data.training.mining import (
    MinedPairs,
    cross_dealer_neighbours,
    mine_pairs,
    pseudo_label_precision,
    pseudo_labels,
)
from prodmatch.errors import ConfigError

# rows 0/1 are one product at two dealers, 2/3 another; row 4 (dealer a) is close to row 2 but row 2's
# nearest card of another dealer is row 3, so 2-4 is not mutual; row 5 has only its own dealer nearby.
VECTORS = np.array(
    [[1.0, 0.0, 0.0], [0.98, 0.2, 0.0], [0.0, 1.0, 0.0], [0.0, 0.99, 0.1], [0.1, 0.97, 0.0], [0, 0, 1.0]]
)
DEALERS = np.array(["a", "b", "b", "a", "c", "c"], dtype=object)


def test_cross_dealer_neighbours_skip_own_dealer():
    ids, scores = cross_dealer_neighbours(VECTORS, DEALERS, k=2)
    assert ids.shape == (6, 2)
    assert (DEALERS[ids] != DEALERS[:, None]).all()
    assert ids[2, 0] == 3 and ids[4, 0] in (2, 3)
    assert (np.diff(scores, axis=1) <= 0).all()
    # a dealer holding all but one row: the others have a single foreign neighbour, then padding
    ids, _ = cross_dealer_neighbours(VECTORS[:3], ["x", "x", "y"], k=2)
    assert ids[0].tolist() == [2, -1]


def test_mutual_pairs_and_threshold():
    pairs = mine_pairs(VECTORS, DEALERS, threshold=0.5)
    assert sorted(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True)) == [(0, 1), (2, 3)]
    assert (pairs.first < pairs.second).all() and (pairs.score >= 0.5).all()
    assert len(mine_pairs(VECTORS, DEALERS, threshold=0.999)) == 0
    wider = mine_pairs(VECTORS, DEALERS, threshold=0.5, k=2)
    assert len(wider) > len(pairs)
    with pytest.raises(ConfigError, match="threshold"):
        mine_pairs(VECTORS, DEALERS, threshold=1.5)
    with pytest.raises(ValueError, match="dealers"):
        mine_pairs(VECTORS, DEALERS[:3])


def test_pseudo_label_precision_and_components():
    pairs = MinedPairs(np.array([0, 1, 4, 6]), np.array([1, 2, 5, 7]), np.ones(4, dtype=np.float32))
    skus = ["p", "p", "q", "r", "s", "s", "", "t"]
    # (0,1) right, (1,2) wrong, (4,5) right, (6,7) unknown: 2 / 3
    assert pseudo_label_precision(pairs, skus) == pytest.approx(2 / 3)
    assert np.isnan(pseudo_label_precision(pairs, [""] * 8))
    labels = pseudo_labels(pairs, 9)
    assert labels.tolist() == [0, 0, 0, -1, 1, 1, 2, 2, -1]


def test_title_tfidf_mining_on_the_tiny_catalog_finds_products(tiny_catalogs):
    from prodmatch.encoders.tfidf import TfidfEncoder

    database = tiny_catalogs[1]
    encoder = TfidfEncoder(dim=None)
    vectors = encoder.fit(database.texts("title")).encode(database.texts("title")).vectors
    pairs = mine_pairs(vectors, database.dealers, threshold=0.3)
    assert len(pairs) >= len(database) // 10
    dealers = database.dealers
    assert (dealers[pairs.first] != dealers[pairs.second]).all()
    precision = pseudo_label_precision(pairs, database.skus)
    # random pairs of the same catalog share a SKU far less often than mined ones
    rng = np.random.default_rng(0)
    random_pairs = MinedPairs(
        rng.integers(0, len(database), 500), rng.integers(0, len(database), 500), np.ones(500)
    )
    assert precision > 0.5 > pseudo_label_precision(random_pairs, database.skus)
    labels = pseudo_labels(pairs, len(database))
    assert labels.max() + 1 == len(np.unique(labels[labels >= 0]))
    assert (labels[pairs.first] == labels[pairs.second]).all()


def test_cross_modal_miner_labels_and_report(tiny_catalogs):
    from prodmatch.data.training.mining import CrossModalMiner
    from prodmatch.encoders.tfidf import TfidfEncoder

    database = tiny_catalogs[1]
    miner = CrossModalMiner(encoder="tfidf", view="title", threshold=0.3)
    labels, report = miner.labels(database, {"tfidf": TfidfEncoder(dim=None)})
    assert labels.shape == (len(database),) and labels.dtype == np.int64
    # k=1: every card is in at most one pair, so each pseudo-product is one pair
    assert report["mining/labelled_cards"] == (labels >= 0).sum() == 2 * report["mining/pairs"]
    assert report["mining/classes"] == report["mining/pairs"]
    assert 0.5 < report["mining/pair_precision"] <= 1  # checked against the SKUs, never read from them


def test_cross_modal_miner_names_a_missing_encoder(tiny_catalogs):
    from prodmatch.data.training.mining import CrossModalMiner

    with pytest.raises(ConfigError, match=r"mining.encoder='nope'.*known: tfidf"):
        CrossModalMiner(encoder="nope").labels(tiny_catalogs[1], {"tfidf": object()})
    with pytest.raises(ConfigError, match="threshold"):
        CrossModalMiner(threshold=2.0)
