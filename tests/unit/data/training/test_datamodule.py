"""PairDataModule: the train / validation split, the pairs sampler's batches, the class-batched samplers
(m per class, two views, same-product positives), product labels and the split, and its config errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prodmatch.data.splits import ProductSplit, product_split, stratified_split
from prodmatch.data.training.augment import Augment
from prodmatch.data.training.datamodule import PairDataModule
from prodmatch.data.training.samplers import MPerClass, PairBatches, Positives, Views
from prodmatch.errors import ConfigError


def _codes(sizes: list[int], seed: int = 0) -> np.ndarray:
    """Shuffled target codes with the given number of cards per target."""
    codes = np.repeat(np.arange(len(sizes)), sizes)
    return np.random.default_rng(seed).permutation(codes)


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
    with pytest.raises(ConfigError, match=r"datamodule\.val_fraction=1\.0 .*datamodule\.val_fraction=0\.1"):
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
    p0, p1 = dm.draw(0), dm.draw(1)
    assert np.isin(np.concatenate([p0.first, p0.second]), train).all()
    np.testing.assert_array_equal(np.sort(p0.first), train)
    assert not np.array_equal(p0.second, p1.second)
    v = dm.draw(0, "val")
    assert np.isin(np.concatenate([v.first, v.second]), val).all()
    np.testing.assert_array_equal(dm.draw(5, "val").second, v.second)  # fixed validation pairs


def test_datamodule_image_payload(database) -> None:
    dm = PairDataModule(database, image_size=32, batch_size=8, num_workers=0, augment=Augment())
    loader = dm.train_dataloader()
    assert len(loader.dataset) == len(dm.train_indices)
    batch = next(iter(loader))
    assert batch["a"].shape == (8, 3, 32, 32) and batch["b"].shape == (8, 3, 32, 32)
    assert batch["a"].dtype == torch.float32 and batch["same"].dtype == torch.bool
    assert batch["target_a"].dtype == torch.int64
    torch.testing.assert_close(batch["same"], batch["target_a"] == batch["target_b"])
    assert set(batch) == {"a", "b", "same", "target_a", "target_b"}  # nothing the modules do not read
    val = next(iter(dm.val_dataloader()))
    assert val["a"].shape[1:] == (3, 32, 32)


def test_datamodule_text_payload_and_pairs_per_epoch(database) -> None:
    dm = PairDataModule(
        database,
        modality="text",
        text_view="title_cat",
        batch_size=4,
        num_workers=0,
        sampler=PairBatches(pairs_per_epoch=20, balance_targets=True),
    )
    dataset = dm.train_dataloader().dataset
    assert len(dataset) == 20
    texts = database.texts("title_cat")
    item = dataset[3]
    assert item["a"] == texts[dataset.draw.first[3]] and item["b"] == texts[dataset.draw.second[3]]
    assert item["target_a"] == dm.target_codes[dataset.draw.first[3]]
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch["a"], list) and all(isinstance(t, str) for t in batch["a"])
    assert len(batch["b"]) == 4 and batch["same"].shape == (4,)


def test_datamodule_rejects_bad_settings(database) -> None:
    with pytest.raises(ConfigError, match="modality"):
        PairDataModule(database, modality="audio")
    with pytest.raises(ConfigError, match="text_view"):
        PairDataModule(database, modality="text", text_view="image")
    with pytest.raises(ConfigError, match="pairs_per_epoch"):
        PairDataModule(database, sampler=PairBatches(pairs_per_epoch=0))


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"batch_size": 0}, "datamodule.batch_size=0"),
        ({"val_fraction": 1.5}, "datamodule.val_fraction=1.5"),
        ({"num_workers": -1}, "datamodule.num_workers=-1"),
        ({"label": "brand"}, "datamodule.label='brand'"),
        ({"sampler": "triplets"}, "datamodule.sampler='triplets'"),
        ({"sampler": MPerClass(m=3)}, "datamodule.sampler.m=3"),
        ({"sampler": MPerClass(m=4), "batch_size": 4096}, "datamodule.batch_size=4096"),
        ({"decoded_size": 4}, "datamodule.decoded_size=4"),
    ],
)
def test_bad_settings_are_one_config_line_naming_the_key(database, override, key) -> None:
    with pytest.raises(ConfigError) as info:
        PairDataModule(database, **({"batch_size": 8, "num_workers": 0} | override))
    message = str(info.value)
    assert key in message and "\n" not in message
    assert "; " in message  # the fix follows the problem


def test_bad_batch_size_through_the_config_is_one_error_line(compose_cfg, database) -> None:
    from hydra.utils import instantiate

    from prodmatch.errors import one_line
    from prodmatch.tasks.wrapper import user_error

    cfg = compose_cfg("train", ["datamodule.batch_size=0", "datamodule.modality=image"])
    with pytest.raises(Exception) as info:
        instantiate(cfg.datamodule, database=database)
    err = user_error(info.value)
    assert isinstance(err, ConfigError)
    assert one_line(err).startswith("datamodule.batch_size=0 must be a positive integer")


def test_sku_label_trains_only_on_train_products(database) -> None:
    dm = PairDataModule(
        database,
        label="sku",
        sampler=MPerClass(m=2),
        batch_size=8,
        image_size=32,
        num_workers=0,
        split=ProductSplit.draw(database.skus, (0.6, 0.2, 0.2), seed=0),
    )
    split = product_split(database.skus, (0.6, 0.2, 0.2), seed=0)
    np.testing.assert_array_equal(dm.train_indices, np.flatnonzero(split == "train"))
    np.testing.assert_array_equal(dm.val_indices, np.flatnonzero(split == "val"))
    assert dm.num_classes == len(set(database.skus[split == "train"]))
    np.testing.assert_array_equal(dm.label_names[dm.label_codes], database.skus)
    # training products hold the codes 0 .. num_classes - 1, the others come after them
    assert set(dm.label_codes[dm.train_indices]) == set(range(dm.num_classes))
    assert dm.label_codes[dm.val_indices].min() >= dm.num_classes
    loader = dm.train_dataloader()
    train_labels = set(dm.label_codes[dm.train_indices].tolist())
    for i, batch in enumerate(loader):
        assert batch["x"].shape == (8, 3, 32, 32)
        assert set(batch["label"].tolist()) <= train_labels
        assert (np.bincount(batch["label"].numpy()) % 2 == 0).all()  # m = 2 cards per class
        if i == 2:
            break
    val = next(iter(dm.val_dataloader()))
    assert set(val["label"].tolist()) <= set(dm.label_codes[dm.val_indices].tolist())
    # the same split as per-card labels (e.g. from split_catalogs) gives the same module
    again = PairDataModule(database, label="sku", sampler=MPerClass(m=2), split=split)
    np.testing.assert_array_equal(again.train_indices, dm.train_indices)


def test_target_label_with_a_product_split_trains_on_train_products_only(database) -> None:
    split = product_split(database.skus, (0.6, 0.2, 0.2), seed=0)
    dm = PairDataModule(database, image_size=32, batch_size=8, num_workers=0, seed=0, split=split)
    assert (split[dm.train_indices] == "train").all() and (split[dm.val_indices] == "val").all()
    assert len(dm.train_indices) == (split == "train").sum() and dm.num_classes == len(dm.target_names)
    anchors = np.concatenate([dm.draw(0).first, dm.draw(0).second])
    assert (split[anchors] == "train").all()  # no pair touches a test product's card
    with pytest.raises(ConfigError, match="split has 3 values"):
        PairDataModule(database, image_size=32, batch_size=8, num_workers=0, split=["train"] * 3)


def test_sku_label_needs_the_run_s_product_split(database) -> None:
    with pytest.raises(ConfigError, match="split="):
        PairDataModule(database, label="sku", sampler=MPerClass(m=2), batch_size=8)


def test_sku_label_pairs_are_same_product_pairs(database) -> None:
    split = ProductSplit.draw(database.skus)
    dm = PairDataModule(
        database, label="sku", batch_size=8, image_size=32, num_workers=0, seed=1, split=split
    )
    pairs = dm.draw(0)
    assert np.isin(np.concatenate([pairs.first, pairs.second]), dm.train_indices).all()
    skus = database.skus
    np.testing.assert_array_equal(skus[pairs.first] == skus[pairs.second], pairs.same)
    assert pairs.same.any()


def test_views_sampler_gives_two_views_of_each_card(database) -> None:
    dm = PairDataModule(
        database, sampler=Views(), label="sku", batch_size=8, image_size=32, num_workers=0,
        split=ProductSplit.draw(database.skus),
    )  # fmt: skip
    batch = next(iter(dm.train_dataloader()))
    assert batch["a"].shape == batch["b"].shape == (8, 3, 32, 32)
    assert np.isin(batch["label"].numpy(), dm.train_indices).all()  # label = the card's position
    assert not torch.equal(batch["a"], batch["b"])  # two different augmentations
    with pytest.raises(ConfigError, match="views"):
        PairDataModule(database, modality="text", sampler=Views())


def test_positives_sampler_gives_same_product_texts(database) -> None:
    dm = PairDataModule(
        database, modality="text", label="sku", sampler=Positives(), batch_size=4, num_workers=0,
        split=ProductSplit.draw(database.skus),
    )  # fmt: skip
    loader = dm.train_dataloader()
    titles = np.array(database.texts("title"), dtype=object)
    sku_of = dict(zip(titles, database.skus, strict=True))
    batch = next(iter(loader))
    assert len(batch["a"]) == 4 and batch["label"].dtype == torch.int64
    assert [sku_of[t] for t in batch["a"]] == [sku_of[t] for t in batch["b"]]
    assert len(set(batch["label"].tolist())) == 4  # no product twice in a batch
    assert len(loader.dataset) <= len(dm.train_indices)


def test_pseudo_labels_replace_the_skus(database) -> None:
    labels = np.full(len(database), -1)
    labels[:40] = np.arange(40) // 2  # 20 mined pairs
    dm = PairDataModule(database, label="sku", sampler=MPerClass(m=2), labels=labels, batch_size=8)
    np.testing.assert_array_equal(dm.train_indices, np.arange(40))
    assert len(dm.val_indices) == 0 and dm.val_dataloader() == []
    assert dm.num_classes == 20
    with pytest.raises(ConfigError, match="one label per card"):
        PairDataModule(database, label="sku", labels=labels[:5])
