"""Training data from the database cards, resampled every epoch, split into train / validation by seed.

Only the database catalog comes in here, as in the study: the query cards are never trained on. The module
holds index arrays only; images are decoded and texts looked up in the DataLoader workers.

``label`` says which cards are positives for each other: ``target`` (the study's categories) or ``sku`` (the
same product; the catalog's SKUs, or per-card ``labels`` such as mined pseudo-SKUs). ``sampler`` says what a
batch holds:

* ``pairs`` (the study's): (a, b, same) pairs, :class:`~prodmatch.data.pairs.PairSampler`;
* ``m_per_class``: single cards ``x`` with their class ``label``, m cards per class per batch
  (pytorch-metric-learning's ``MPerClassSampler``; it draws from numpy's global RNG, which the run's seed sets);
* ``views``: two augmented views ``a`` / ``b`` of each card, ``label`` = card position (self-supervised NT-Xent);
* ``positives``: (a, b) cards of the same class, in rounds without a repeated class
  (:func:`~prodmatch.data.pairs.positive_pairs`), for in-batch-negative losses such as
  sentence-transformers' MultipleNegativesRankingLoss.

With ``label=sku`` only cards of the "train" products are trained on and the "val" products validate: the
split is ``split``, the run's :class:`~prodmatch.data.splits.ProductSplit` (train.py draws it once and scores
with the same object) or per-card "train" / "val" / "test" / "none" labels. With per-card ``labels`` and no ``split`` every labelled card trains (label-free
training sees no SKU) and there is no validation split. With ``label=target`` and a ``split`` (the product
protocol), the "train" products' cards train and the "val" products' cards validate, so a category model is
scored on products it never saw too.

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
from torch.utils.data import DataLoader

from prodmatch.data.catalog import TEXT_VIEWS, Catalog
from prodmatch.data.datasets import CardDataset, PairDataset, positives_collate
from prodmatch.data.images import ImageDataset, build_transform
from prodmatch.data.pairs import Pairs, PairSampler, encode_labels, positive_pairs
from prodmatch.data.splits import ProductSplit
from prodmatch.errors import ConfigError

log = logging.getLogger("prodmatch.data")

Modality = Literal["image", "text"]
LABELS = ("target", "sku")
SAMPLERS = ("pairs", "m_per_class", "views", "positives")
_SPLIT_STREAM = (0, 1)  # appended to the seed: the split's random stream never equals an epoch's pair stream


def stratified_split(
    target_codes: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) sorted positions: ``round(val_fraction * size)`` cards of each target go to validation.

    A target always keeps at least one training card, so a target with a single card is train-only.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(
            f"datamodule.val_fraction={val_fraction} is outside [0, 1); set e.g. datamodule.val_fraction=0.1"
        )
    codes = np.asarray(target_codes, dtype=np.int64)
    rng = np.random.default_rng((int(seed), *_SPLIT_STREAM))
    order = np.lexsort((rng.random(len(codes)), codes))  # by target, shuffled inside each target
    counts = np.bincount(codes)
    offsets = np.cumsum(counts) - counts
    n_val = np.clip(np.floor(counts * val_fraction + 0.5).astype(np.int64), 0, np.maximum(counts - 1, 0))
    rank = np.arange(len(codes)) - offsets[codes[order]]
    to_val = rank < n_val[codes[order]]
    return np.sort(order[~to_val]), np.sort(order[to_val])


class PairDataModule(pl.LightningDataModule):
    """Database cards for siamese, classification, metric-learning and sentence-model training.

    ``sampler=pairs`` batches are dicts: ``a``, ``b`` (image tensors ``[B, 3, S, S]``, or lists of raw strings of
    ``text_view`` that the text module tokenises itself), ``same`` (bool ``[B]``), ``target_a`` / ``target_b``
    (int64 codes into :attr:`target_names`) and, when the catalog has skus, ``sku_a`` / ``sku_b`` (codes into
    :attr:`sku_names`, -1 = no sku). ``m_per_class``: ``x`` and ``label`` (int64 codes into
    :attr:`label_names`; training classes first, see :attr:`num_classes`); ``views``: ``a``, ``b`` and ``label`` (the card's position); ``positives``: ``a``,
    ``b`` and ``label`` (their shared class). See the module docstring for ``label`` and the split.
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
        label: str = "target",
        sampler: str = "pairs",
        m_per_class: int = 4,
        split: ProductSplit | Sequence[str] | np.ndarray | None = None,
        labels: Sequence[Any] | np.ndarray | None = None,
    ) -> None:
        super().__init__()
        _check_settings(modality, text_view, batch_size, num_workers, pairs_per_epoch, label, sampler)
        self.save_hyperparameters(ignore=["database", "split", "labels"])
        if isinstance(split, ProductSplit):
            split = split.of(database.skus)
        self.database = database
        self.modality = modality
        self.text_view = text_view
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.augment = augment
        self.pairs_per_epoch = pairs_per_epoch
        self.label = label
        self.sampler = sampler
        self.m_per_class = int(m_per_class)

        self.target_codes, self.target_names = encode_labels(database.targets)
        self.sku_codes, self.sku_names = _sku_codes(database.skus)
        if label == "target":
            self.label_codes, self.label_names = self.target_codes, self.target_names
            self._num_train_classes = len(self.target_names)
            self.train_indices, self.val_indices = self._target_indices(split, val_fraction, seed)
        else:
            self.label_codes, self.label_names = self._product_labels(labels)
            self.train_indices, self.val_indices = self._product_indices(split, labels)
            self._train_classes_first()
        self._check_sampler_fits()
        self.train_sampler: PairSampler | None = None
        self.val_sampler: PairSampler | None = None
        if sampler == "pairs":
            sampler_args = dict(positive_prob=positive_prob, balance_targets=balance_targets, seed=seed)
            self.train_sampler = PairSampler(self.label_codes, self.train_indices, **sampler_args)
            if len(np.unique(self.label_codes[self.val_indices])) >= 2:
                self.val_sampler = PairSampler(self.label_codes, self.val_indices, **sampler_args)
            elif val_fraction > 0:
                rank_zero_warn(
                    f"validation split of {len(self.val_indices)} cards holds fewer than two classes: "
                    "no validation pairs; raise datamodule.val_fraction for a validation loss"
                )
        self._items: dict[bool, Sequence[Any]] = {}

    # ------------------------------------------------------------------ labels and split

    def _target_indices(
        self, split: Sequence[str] | np.ndarray | None, val_fraction: float, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(train, val) positions for category labels: stratified by target, over the "train" products' cards
        only when a product ``split`` is given (a category model scored on unseen products never saw them)."""
        if split is None:
            return stratified_split(self.target_codes, val_fraction, seed)
        split = np.asarray(split, dtype=object).ravel()
        if len(split) != len(self.database):
            raise ConfigError(
                f"split has {len(split)} values for {len(self.database)} database cards; pass the "
                "run's prodmatch.data.splits.ProductSplit"
            )
        return np.flatnonzero(split == "train"), np.flatnonzero(split == "val")

    def _product_labels(self, labels: Sequence[Any] | np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Codes (-1 = none) and names of the product classes: ``labels`` if given, else the catalog's SKUs."""
        if labels is not None:
            values = np.asarray(labels, dtype=object).ravel()
            if len(values) != len(self.database):
                raise ConfigError(
                    f"labels has {len(values)} values for {len(self.database)} database cards; "
                    "pass one label per card (-1, '' or None for none)"
                )
            values = np.where(pd.Series(values).isin([-1, "-1"]).to_numpy(), None, values)
            return _sku_codes(values)
        if self.sku_codes is None:
            raise ConfigError(
                "datamodule.label=sku but the database has no sku column; add one, pass mined "
                "pseudo-labels (labels=...), or use datamodule.label=target"
            )
        return self.sku_codes, self.sku_names

    def _product_indices(
        self,
        split: Sequence[str] | np.ndarray | None,
        labels: Sequence[Any] | np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(train, val) positions: labelled cards of the "train" / "val" products."""
        labelled = self.label_codes >= 0
        if split is None and labels is not None:
            return np.flatnonzero(labelled), np.empty(0, dtype=np.int64)
        if split is None:
            raise ConfigError(
                "datamodule.label=sku trains on the train products' cards: pass split=, the run's "
                "prodmatch.data.splits.ProductSplit (train.py passes the one it scores with)"
            )
        split = np.asarray(split, dtype=object).ravel()
        if len(split) != len(self.database):
            raise ConfigError(
                f"split has {len(split)} values for {len(self.database)} database cards; pass the "
                "run's prodmatch.data.splits.ProductSplit"
            )
        return np.flatnonzero(labelled & (split == "train")), np.flatnonzero(labelled & (split == "val"))

    def _train_classes_first(self) -> None:
        """Renumber the product classes so that the training split's are 0 .. num_classes - 1.

        A class-centre loss (ArcFace) then holds a centre for each trained product only; validation and test
        products get the codes after them.
        """
        codes = self.label_codes
        train = np.unique(codes[self.train_indices])
        rest = np.setdiff1d(np.unique(codes[codes >= 0]), train)
        new = np.full(len(self.label_names), -1, dtype=np.int64)
        new[train] = np.arange(len(train))
        new[rest] = np.arange(len(train), len(train) + len(rest))
        used = new >= 0
        names = np.empty(int(used.sum()), dtype=object)
        names[new[used]] = self.label_names[used]
        self.label_codes = np.where(codes >= 0, new[np.maximum(codes, 0)], -1)
        self.label_names = names
        self._num_train_classes = len(train)

    def _check_sampler_fits(self) -> None:
        if len(self.train_indices) == 0:
            raise ConfigError(
                f"datamodule.label={self.label}: no training cards (no labelled card of a train product); "
                "check the SKUs / labels and retrieval.split_fractions"
            )
        if self.sampler != "m_per_class":
            return
        classes = len(np.unique(self.label_codes[self.train_indices]))
        if self.m_per_class < 1 or self.batch_size % self.m_per_class:
            raise ConfigError(
                f"datamodule.m_per_class={self.m_per_class} must be >= 1 and divide "
                f"datamodule.batch_size={self.batch_size}; set e.g. datamodule.m_per_class=4"
            )
        if self.m_per_class * classes < self.batch_size:
            raise ConfigError(
                f"datamodule.batch_size={self.batch_size} exceeds m_per_class x classes "
                f"({self.m_per_class} x {classes}); lower datamodule.batch_size"
            )

    @property
    def num_classes(self) -> int:
        """Number of training classes of ``label``: all targets, or the products of the training split."""
        return self._num_train_classes

    # ------------------------------------------------------------------ pairs (the study's sampler)

    def pairs(self, epoch: int, split: str = "train") -> Pairs:
        """The pairs of ``epoch`` (train) or the fixed validation pairs (one per validation card)."""
        if self.train_sampler is None:
            raise ConfigError(f"datamodule.sampler={self.sampler} draws no pairs; use sampler=pairs")
        if split == "train":
            return self.train_sampler.sample(epoch, self.pairs_per_epoch)
        if self.val_sampler is None:
            raise ConfigError("no validation pairs: the validation split holds fewer than two classes")
        return self.val_sampler.sample(0)

    def train_dataloader(self) -> DataLoader:
        trainer = self._trainer_or_none()
        epoch = trainer.current_epoch if trainer is not None else 0
        if trainer is not None and trainer.reload_dataloaders_every_n_epochs != 1 and trainer.max_epochs != 1:
            rank_zero_warn(
                "PairDataModule samples fresh pairs per epoch only with "
                "Trainer(reload_dataloaders_every_n_epochs=1); the pairs of the first epoch are reused"
            )
        self._seed_epoch(epoch, trainer)
        if self.sampler != "pairs":
            return self._class_loader(epoch, train=True)
        dataset = self._dataset(self.pairs(epoch, "train"), train=True, epoch=epoch)
        generator = torch.Generator().manual_seed(
            int(np.random.default_rng((self.seed, epoch)).integers(2**62))
        )
        # No DataLoader shuffle: the epoch's pairs already come in a seeded random order, and a sampler's draws
        # would depend on Lightning's restart path (a resumed run must see the batches an uninterrupted one sees).
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            generator=generator,
            drop_last=len(dataset) > self.batch_size,  # no ragged last batch (BatchNorm needs > 1 sample)
            **self._loader_args(),
        )

    def _seed_epoch(self, epoch: int, trainer: pl.Trainer | None) -> None:
        """Seed Python, NumPy and torch from (seed, epoch) as the epoch's loader is made: augmentations drawn in the
        main process then depend on the epoch alone, so a run resumed from a checkpoint repeats an uninterrupted
        one (Lightning skips epoch-start hooks on some restarts, so this lives here, where every epoch passes)."""
        rank = trainer.global_rank if trainer is not None else 0
        epoch_seed = int(np.random.default_rng((self.seed, epoch, 1)).integers(2**31 - 1))
        pl.seed_everything(epoch_seed + rank, workers=True, verbose=False)

    def val_dataloader(self) -> DataLoader | list:
        if self.sampler != "pairs":
            return self._class_loader(0, train=False) if len(self.val_indices) else []
        if self.val_sampler is None:
            return []
        dataset = self._dataset(self.pairs(0, "val"), train=False)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, **self._loader_args())

    def _dataset(self, pairs: Pairs, train: bool, epoch: int = 0) -> PairDataset:
        seed = int(np.random.default_rng((self.seed, epoch, 2)).integers(2**31 - 1)) if train else None
        return PairDataset(pairs, self._card_items(train), self.target_codes, seed=seed)

    # ------------------------------------------------------------------ class-batched samplers

    def _class_loader(self, epoch: int, train: bool) -> DataLoader:
        """Loader of the m_per_class / views / positives samplers (train: resampled per epoch)."""
        pool = self.train_indices if train else self.val_indices
        args = dict(batch_size=self.batch_size, **self._loader_args())
        if self.sampler == "positives":
            pairs = positive_pairs(self.label_codes, pool, self.seed, epoch)
            dataset = PairDataset(pairs, self._card_items(False), self.label_codes)
            return DataLoader(dataset, shuffle=False, collate_fn=positives_collate, **args)
        if self.sampler == "views":
            second = self._card_items(True)  # the second view is always augmented
            dataset = CardDataset(pool, self._card_items(train), np.arange(len(self.database)), second)
        else:
            dataset = CardDataset(pool, self._card_items(train), self.label_codes)
        if not train:
            # Validation batches in class order, so positives share a batch; fixed from epoch to epoch.
            dataset.positions = pool[np.argsort(self.label_codes[pool], kind="stable")]
            return DataLoader(dataset, shuffle=False, **args)
        drop_last = len(dataset) > self.batch_size  # no ragged last batch (BatchNorm needs > 1 sample)
        if self.sampler == "views":
            generator = torch.Generator().manual_seed(
                int(np.random.default_rng((self.seed, epoch)).integers(2**62))
            )
            return DataLoader(dataset, shuffle=True, generator=generator, drop_last=drop_last, **args)
        from pytorch_metric_learning.samplers import MPerClassSampler

        sampler = MPerClassSampler(
            self.label_codes[pool], self.m_per_class, self.batch_size, max(len(pool), self.batch_size)
        )
        return DataLoader(dataset, sampler=sampler, drop_last=True, **args)

    # ------------------------------------------------------------------ payloads

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


def _check_settings(
    modality: str,
    text_view: str,
    batch_size: int,
    num_workers: int,
    pairs_per_epoch: int | None,
    label: str,
    sampler: str,
) -> None:
    """One ConfigError line per bad datamodule setting, naming its key and the fix."""
    if modality not in ("image", "text"):
        raise ConfigError(f"data modality {modality!r} is unknown; use 'image' or 'text'")
    if modality == "text" and text_view not in TEXT_VIEWS:
        raise ConfigError(f"text_view {text_view!r} is unknown; use one of {', '.join(TEXT_VIEWS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(
            f"datamodule.batch_size={batch_size!r} must be a positive integer; set e.g. datamodule.batch_size=64"
        )
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(
            f"datamodule.num_workers={num_workers!r} must be an integer >= 0; set e.g. num_workers=2"
        )
    if pairs_per_epoch is not None and pairs_per_epoch < 1:
        raise ConfigError(f"pairs_per_epoch={pairs_per_epoch} must be >= 1, or null for one pair per card")
    if label not in LABELS:
        raise ConfigError(f"datamodule.label={label!r} is unknown; use one of {', '.join(LABELS)}")
    if sampler not in SAMPLERS:
        raise ConfigError(f"datamodule.sampler={sampler!r} is unknown; use one of {', '.join(SAMPLERS)}")
    if sampler == "views" and modality != "image":
        raise ConfigError("datamodule.sampler=views augments images; use modality=image or another sampler")


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
