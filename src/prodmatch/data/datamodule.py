"""Training data: pairs of database cards, resampled every epoch, split into train / validation by seed.

Only the database catalog comes in here, as in the study: the query cards are never trained on. The module
holds index arrays only; images are decoded and texts looked up in the DataLoader workers.

Fresh pairs each epoch need ``Trainer(reload_dataloaders_every_n_epochs=1)``: ``train_dataloader()`` then
runs once per epoch and samples that epoch's pairs from ``(seed, trainer.current_epoch)``. Every rank of a
distributed run draws the same pairs, and Lightning's DistributedSampler shares them out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from prodmatch.data.catalog import TEXT_VIEWS, Catalog
from prodmatch.data.images import ImageDataset, build_transform
from prodmatch.data.pairs import Pairs, PairSampler, encode_labels
from prodmatch.errors import ConfigError

log = logging.getLogger("prodmatch.data")

Modality = Literal["image", "text"]
_SPLIT_STREAM = (0, 1)  # appended to the seed: the split's random stream never equals an epoch's pair stream


def stratified_split(
    target_codes: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) sorted positions: ``round(val_fraction * size)`` cards of each target go to validation.

    A target always keeps at least one training card, so a target with a single card is train-only.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction={val_fraction} is outside [0, 1); set e.g. data.val_fraction=0.1")
    codes = np.asarray(target_codes, dtype=np.int64)
    rng = np.random.default_rng((int(seed), *_SPLIT_STREAM))
    order = np.lexsort((rng.random(len(codes)), codes))  # by target, shuffled inside each target
    counts = np.bincount(codes)
    offsets = np.cumsum(counts) - counts
    n_val = np.clip(np.floor(counts * val_fraction + 0.5).astype(np.int64), 0, np.maximum(counts - 1, 0))
    rank = np.arange(len(codes)) - offsets[codes[order]]
    to_val = rank < n_val[codes[order]]
    return np.sort(order[~to_val]), np.sort(order[to_val])


class PairDataset(Dataset):
    """Map-style dataset of one epoch's pairs; ``items[i]`` is card i's payload (image tensor or text)."""

    def __init__(
        self,
        pairs: Pairs,
        items: Sequence[Any],
        target_codes: np.ndarray,
        sku_codes: np.ndarray | None = None,
    ) -> None:
        self.pairs = pairs
        self.items = items
        self.target_codes = target_codes
        self.sku_codes = sku_codes

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        a, b = int(self.pairs.anchor[i]), int(self.pairs.other[i])
        item = {
            "a": self.items[a],
            "b": self.items[b],
            "same": bool(self.pairs.same[i]),
            "target_a": int(self.target_codes[a]),
            "target_b": int(self.target_codes[b]),
        }
        if self.sku_codes is not None:
            item["sku_a"] = int(self.sku_codes[a])
            item["sku_b"] = int(self.sku_codes[b])
        return item


class PairDataModule(pl.LightningDataModule):
    """Pairs of database cards for siamese, classification and sentence-model training.

    Batches are dicts: ``a``, ``b`` (image tensors ``[B, 3, S, S]``, or lists of raw strings of ``text_view``
    that the text module tokenises itself), ``same`` (bool ``[B]``), ``target_a`` / ``target_b`` (int64 codes
    into :attr:`target_names`) and, when the catalog has skus, ``sku_a`` / ``sku_b`` (codes into
    :attr:`sku_names`, -1 = no sku).
    """

    def __init__(
        self,
        database: Catalog,
        modality: Modality = "image",
        text_view: str = "title",
        image_size: int = 224,
        batch_size: int = 64,
        num_workers: int = 2,
        val_fraction: float = 0.1,
        seed: int = 0,
        positive_prob: float = 0.5,
        balance_targets: bool = False,
        augment: bool = True,
        pairs_per_epoch: int | None = None,
    ) -> None:
        super().__init__()
        if modality not in ("image", "text"):
            raise ConfigError(f"data modality {modality!r} is unknown; use 'image' or 'text'")
        if modality == "text" and text_view not in TEXT_VIEWS:
            raise ConfigError(f"text_view {text_view!r} is unknown; use one of {', '.join(TEXT_VIEWS)}")
        if pairs_per_epoch is not None and pairs_per_epoch < 1:
            raise ConfigError(
                f"pairs_per_epoch={pairs_per_epoch} must be >= 1, or null for one pair per card"
            )
        self.save_hyperparameters(ignore=["database"])
        self.database = database
        self.modality = modality
        self.text_view = text_view
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.augment = augment
        self.pairs_per_epoch = pairs_per_epoch

        self.target_codes, self.target_names = encode_labels(database.targets)
        self.sku_codes, self.sku_names = _sku_codes(database.skus)
        self.train_indices, self.val_indices = stratified_split(self.target_codes, val_fraction, seed)
        sampler_args = dict(positive_prob=positive_prob, balance_targets=balance_targets, seed=seed)
        self.train_sampler = PairSampler(self.target_codes, self.train_indices, **sampler_args)
        self.val_sampler: PairSampler | None = None
        if len(np.unique(self.target_codes[self.val_indices])) >= 2:
            self.val_sampler = PairSampler(self.target_codes, self.val_indices, **sampler_args)
        elif val_fraction > 0:
            rank_zero_warn(
                f"validation split of {len(self.val_indices)} cards holds fewer than two targets: "
                "no validation pairs; raise data.val_fraction for a validation loss"
            )
        self._items: dict[bool, Sequence[Any]] = {}

    @property
    def num_classes(self) -> int:
        return len(self.target_names)

    def pairs(self, epoch: int, split: str = "train") -> Pairs:
        """The pairs of ``epoch`` (train) or the fixed validation pairs (one per validation card)."""
        if split == "train":
            return self.train_sampler.sample(epoch, self.pairs_per_epoch)
        if self.val_sampler is None:
            raise ConfigError("no validation pairs: the validation split holds fewer than two targets")
        return self.val_sampler.sample(0)

    def train_dataloader(self) -> DataLoader:
        trainer = self._trainer_or_none()
        epoch = trainer.current_epoch if trainer is not None else 0
        if trainer is not None and trainer.reload_dataloaders_every_n_epochs != 1 and trainer.max_epochs != 1:
            rank_zero_warn(
                "PairDataModule samples fresh pairs per epoch only with "
                "Trainer(reload_dataloaders_every_n_epochs=1); the pairs of the first epoch are reused"
            )
        dataset = self._dataset(self.pairs(epoch, "train"), train=True)
        generator = torch.Generator().manual_seed(
            int(np.random.default_rng((self.seed, epoch)).integers(2**62))
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            generator=generator,
            drop_last=len(dataset) > self.batch_size,  # no ragged last batch (BatchNorm needs > 1 sample)
            **self._loader_args(),
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.val_sampler is None:
            return []
        dataset = self._dataset(self.pairs(0, "val"), train=False)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, **self._loader_args())

    def _dataset(self, pairs: Pairs, train: bool) -> PairDataset:
        return PairDataset(pairs, self._card_items(train), self.target_codes, self.sku_codes)

    def _card_items(self, train: bool) -> Sequence[Any]:
        """Per-card payload source: a lazy image dataset, or the texts of the training view."""
        augment = train and self.augment
        if augment not in self._items:
            if self.modality == "text":
                self._items[augment] = self.database.texts(self.text_view)
            else:
                transform: Callable = build_transform(self.image_size, train=augment)
                paths = self.database.image_paths()
                self._items[augment] = ImageDataset(paths, transform, size_hint=self.image_size)
        return self._items[augment]

    def _loader_args(self) -> dict[str, Any]:
        return dict(num_workers=self.num_workers, pin_memory=torch.cuda.is_available())

    def _trainer_or_none(self) -> pl.Trainer | None:
        return getattr(self, "trainer", None)


def _sku_codes(skus: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Codes over the non-empty skus; -1 where a card has none."""
    if skus is None:
        return None, None
    values = pd.Series(np.asarray(skus, dtype=object), dtype=object).fillna("").astype(str).str.strip()
    present = (values != "").to_numpy(dtype=bool)
    values = values.to_numpy(dtype=object)
    codes = np.full(len(values), -1, dtype=np.int64)
    names = np.empty(0, dtype=object)
    if present.any():
        codes[present], names = encode_labels(values[present])
    return codes, names
