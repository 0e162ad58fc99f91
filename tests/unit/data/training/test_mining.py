"""Cross-modal mining: mutual nearest neighbours across dealers, pseudo-label precision and pseudo-SKUs."""

from __future__ import annotations

import numpy as np
import pytest

from prodmatch.data.training.mining import (
    MinedPairs,
    cross_dealer_neighbours,
    mine_dealer_pairs,
    mine_pairs,
    one_per_dealer_labels,
    pseudo_label_precision,
    pseudo_label_purity,
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


# One product at three dealers (rows 0, 1, 2): mutual nearest neighbours over all dealers pair only two of them;
# each dealer pair on its own links all three. Row 3 (dealer b) is a second product close to row 0.
THREE_DEALERS = np.array([[1.0, 0.0, 0.0], [0.99, 0.1, 0.0], [0.98, 0.0, 0.15], [0.8, 0.6, 0.0]])
THREE_NAMES = np.array(["a", "b", "c", "b"], dtype=object)


def test_dealer_pair_mining_links_every_dealer_of_a_product():
    over_all = mine_pairs(THREE_DEALERS, THREE_NAMES, threshold=0.5)
    per_pair = mine_dealer_pairs(THREE_DEALERS, THREE_NAMES, threshold=0.5)
    assert len(over_all) == 1
    edges = sorted(zip(per_pair.first.tolist(), per_pair.second.tolist(), strict=True))
    assert edges == [(0, 1), (0, 2), (1, 2)]  # row 3: row 0 and row 2 each have row 1 as their nearest b card
    assert (THREE_NAMES[per_pair.first] != THREE_NAMES[per_pair.second]).all()
    assert (per_pair.score >= 0.5).all()
    assert len(mine_dealer_pairs(THREE_DEALERS, THREE_NAMES, threshold=0.9999)) == 0
    with pytest.raises(ConfigError, match="threshold"):
        mine_dealer_pairs(THREE_DEALERS, THREE_NAMES, threshold=-2)


def test_one_per_dealer_groups_never_hold_two_cards_of_a_dealer():
    # a chain a0-b1-a2-c3: components merge all four; one card per dealer keeps the best pairs' groups apart
    pairs = MinedPairs(np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([0.9, 0.6, 0.8], dtype=np.float32))
    dealers = np.array(["a", "b", "a", "c"], dtype=object)
    assert pseudo_labels(pairs, 4).tolist() == [0, 0, 0, 0]
    labels = one_per_dealer_labels(pairs, dealers)
    assert labels.tolist() == [0, 0, 1, 1]  # 0-1 (0.9), 2-3 (0.8); 1-2 (0.6) would put a0 and a2 together
    for group in np.unique(labels[labels >= 0]):
        members = dealers[labels == group]
        assert len(set(members)) == len(members)
    # a size cap: three dealers, groups of at most two
    chain = MinedPairs(np.array([0, 1]), np.array([1, 2]), np.array([0.9, 0.8], dtype=np.float32))
    assert one_per_dealer_labels(chain, ["a", "b", "c"]).tolist() == [0, 0, 0]
    assert one_per_dealer_labels(chain, ["a", "b", "c"], max_size=2).tolist() == [0, 0, -1]


def test_pseudo_label_purity_counts_pairs_within_groups():
    # group 0: p, p, q -> 1 of 3 pairs right; group 1: r, r -> 1 of 1; -1 and unknown SKUs are not counted
    labels = np.array([0, 0, 0, 1, 1, -1, 1])
    assert pseudo_label_purity(labels, ["p", "p", "q", "r", "r", "r", ""]) == pytest.approx(2 / 4)
    assert np.isnan(pseudo_label_purity(np.array([-1, -1]), ["p", "p"]))


@pytest.mark.parametrize(
    ("scope", "grouping"), [("all_dealers", "components"), ("each_dealer", "one_per_dealer")]
)
def test_mining_never_reads_the_sku_column(tiny_catalogs, scope: str, grouping: str):
    """The same pseudo-labels with the sku column dropped or shuffled: mining reads titles and dealers only."""
    from prodmatch.data.training.mining import CrossModalMiner
    from prodmatch.encoders.tfidf import TfidfEncoder

    database = tiny_catalogs[1]
    miner = CrossModalMiner(encoder="tfidf", threshold=0.3, scope=scope, grouping=grouping, singletons=True)
    labels, report = miner.labels(database, {"tfidf": TfidfEncoder(dim=None)})
    no_sku = database._with_frame(database.frame.drop(columns=["sku"]))
    assert no_sku.skus is None
    labels_no_sku, report_no_sku = miner.labels(no_sku, {"tfidf": TfidfEncoder(dim=None)})
    shuffled = database._with_frame(
        database.frame.assign(sku=database.frame["sku"].sample(frac=1, random_state=0).to_numpy())
    )
    labels_shuffled, _ = miner.labels(shuffled, {"tfidf": TfidfEncoder(dim=None)})
    assert labels_no_sku.tolist() == labels.tolist() == labels_shuffled.tolist()
    # the SKU figures are a check only, and only where SKUs exist
    assert "mining/label_purity" in report and "mining/label_purity" not in report_no_sku
    assert report_no_sku["mining/pairs"] == report["mining/pairs"] > 0
    assert (labels >= 0).all()  # singletons: every card has a pseudo-label


def test_each_dealer_one_per_dealer_mining_on_the_tiny_catalog(tiny_catalogs):
    from prodmatch.data.training.mining import CrossModalMiner
    from prodmatch.encoders.tfidf import TfidfEncoder

    database = tiny_catalogs[1]
    base = CrossModalMiner(encoder="tfidf", threshold=0.3)
    wide = CrossModalMiner(encoder="tfidf", threshold=0.3, scope="each_dealer", grouping="one_per_dealer")
    _, base_report = base.labels(database, {"tfidf": TfidfEncoder(dim=None)})
    labels, report = wide.labels(database, {"tfidf": TfidfEncoder(dim=None)})
    assert report["mining/pairs"] >= base_report["mining/pairs"]
    assert report["mining/coverage"] >= base_report["mining/coverage"]
    assert 0.5 < report["mining/label_purity"] <= 1
    dealers = database.dealers
    for group in np.unique(labels[labels >= 0]):
        assert len(set(dealers[labels == group])) == (labels == group).sum()


def test_cross_modal_miner_rejects_bad_scope_grouping_and_cap():
    from prodmatch.data.training.mining import CrossModalMiner

    with pytest.raises(ConfigError, match="scope='nearest'"):
        CrossModalMiner(scope="nearest")
    with pytest.raises(ConfigError, match="grouping='x'"):
        CrossModalMiner(grouping="x")
    with pytest.raises(ConfigError, match="max_group"):
        CrossModalMiner(max_group=3)  # components cannot be capped
