"""Training data from the database cards, resampled every epoch, split into train / validation by seed.

Only the database catalog comes in here, as in the study: the query cards are never trained on. The module
holds index arrays only; images are decoded (or read from the decoded crops) and texts looked up in the
DataLoader workers.

``label`` says which cards are positives for each other: ``target`` (the study's categories) or ``sku`` (the
same product; the catalog's SKUs, or per-card ``labels`` such as mined pseudo-SKUs). ``sampler`` is one object
that says what a batch holds (:mod:`~prodmatch.data.training.samplers`, ``conf/datamodule/sampler/``): the
study's pairs, m cards per class, k distinct cards per product, two views of each card, or same-class positives.

With ``label=sku`` only cards of the "train" products are trained on and the "val" products validate: the
split is ``split``, the run's :class:`~prodmatch.data.splits.ProductSplit` (the train task draws it once and
scores with the same object) or per-card "train" / "val" / "test" / "none" labels. With per-card ``labels`` and no
``split`` every labelled card trains (label-free training sees no SKU) and there is no validation split. With ``label=target`` and a ``split`` (the product
protocol), the "train" products' cards train and the "val" products' cards validate, so a category model is
scored on products it never saw too.

Images: ``augment`` (an :class:`~prodmatch.data.training.augment.Augment` preset, ``augment=light|strong``,
light by default; None: no augmentation) makes the training views. With ``decoded_size`` every database image is decoded once into a
uint8 centre crop of that size (:mod:`~prodmatch.data.training.crops`; a pixel store under ``pixel_cache`` keeps
them for later runs and the retrieval callback) and the views are made from the crops; without it each image
file is decoded whole for every view.

Fresh draws each epoch need ``Trainer(reload_dataloaders_every_n_epochs=1)``: ``train_dataloader()`` then
runs once per epoch and draws that epoch's rows from ``(seed, trainer.current_epoch)``. Every rank of a
distributed run draws the same rows, and Lightning's DistributedSampler shares them out.
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
from prodmatch.data.images import IMAGE_UNREADABLE, ImageDataset
from prodmatch.data.splits import ProductSplit, stratified_split
from prodmatch.data.training.augment import Augment, EvalTransform
from prodmatch.data.training.crops import Crops, decode_crops, report_statuses
from prodmatch.data.training.datasets import DrawDataset
from prodmatch.data.training.pairs import encode_labels
from prodmatch.data.training.samplers import Draw, PairBatches, Sampler
from prodmatch.errors import ConfigError

log = logging.getLogger("prodmatch.data")

Modality = Literal["image", "text"]
LABELS = ("target", "sku")
LIGHT = Augment()  # the light preset's settings (augment=light)


class PairDataModule(pl.LightningDataModule):
    """Database cards for siamese, classification, metric-learning and sentence-model training.

    Batches by the sampler's layout (see :class:`~prodmatch.data.training.datasets.DrawDataset`): ``pairs``: ``a``,
    ``b`` (image tensors ``[B, 3, S, S]``, or lists of raw strings of ``text_view`` that the text module tokenises
    itself), ``same`` (bool ``[B]``), ``target_a`` / ``target_b`` (int64 codes into :attr:`target_names`);
    ``cards``: ``x`` and ``label`` (int64 codes into :attr:`label_names`; training classes first, see
    :attr:`num_classes`); ``views``: ``a``, ``b`` and ``label`` (the card's position); ``positives``: ``a``, ``b``
    and ``label`` (their shared class). See the module docstring for ``label``, the split and the images.
    """

    def __init__(
        self,
        database: Catalog,
        sampler: Sampler | None = None,
        modality: Modality = "image",
        text_view: str = "title",
        image_size: int = 224,
        batch_size: int = 64,
        num_workers: int = 2,
        val_fraction: float = 0.1,
        seed: int = 0,
        augment: Augment | None = LIGHT,
        label: str = "target",
        split: ProductSplit | Sequence[str] | np.ndarray | None = None,
        labels: Sequence[Any] | np.ndarray | None = None,
        decoded_size: int | None = None,
        pixel_cache: str | None = None,
    ) -> None:
        super().__init__()
        sampler = PairBatches() if sampler is None else sampler
        _check_settings(modality, text_view, batch_size, num_workers, label, sampler, decoded_size)
        if sampler.layout == "views" and augment is None:
            raise ConfigError(
                "datamodule/sampler=views needs augmentation (two views of a card must differ); "
                "set augment=light or augment=strong"
            )
        # plain values only: Lightning stores them in checkpoints, which load weights-only
        self.save_hyperparameters(ignore=["database", "split", "labels", "sampler", "augment"])
        if isinstance(split, ProductSplit):
            split = split.of(database.skus)
        self.database = database
        self.sampler = sampler
        self.modality = modality
        self.text_view = text_view
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.augment = augment
        self.label = label
        self.decoded_size = decoded_size
        self.pixel_cache = pixel_cache

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
        self._items: dict[bool, Sequence[Any]] = {}
        self._crops: Crops | None = None
        self._statuses: np.ndarray | None = None  # per card, once the crops are decoded
        if len(self.train_indices) == 0:
            raise ConfigError(
                f"datamodule.label={self.label}: no training cards (no labelled card of a train product); "
                "check the SKUs / labels and retrieval.split_fractions"
            )
        self.sampler.check(self.label_codes, self.train_indices, self.batch_size)
        self._has_val = self._validation_draw() is not None
        if not self._has_val and len(self.val_indices) and val_fraction > 0:
            rank_zero_warn(
                f"validation split of {len(self.val_indices)} cards gives datamodule/sampler={self.sampler.name} "
                "no validation batch (e.g. fewer than two classes): no validation loss; raise "
                "datamodule.val_fraction for one"
            )

    # ------------------------------------------------------------------ labels and split

    def _target_indices(
        self, split: Sequence[str] | np.ndarray | None, val_fraction: float, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(train, val) positions for category labels: stratified by target, over the "train" products' cards
        only when a product ``split`` is given (a category model scored on unseen products never saw them)."""
        if split is None:
            return stratified_split(self.target_codes, val_fraction, seed)
        split = self._checked_split(split)
        return np.flatnonzero(split == "train"), np.flatnonzero(split == "val")

    def _checked_split(self, split: Sequence[str] | np.ndarray) -> np.ndarray:
        split = np.asarray(split, dtype=object).ravel()
        if len(split) != len(self.database):
            raise ConfigError(
                f"split has {len(split)} values for {len(self.database)} database cards; pass the "
                "run's prodmatch.data.splits.ProductSplit"
            )
        return split

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
                "prodmatch.data.splits.ProductSplit (the train task passes the one it scores with)"
            )
        split = self._checked_split(split)
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

    @property
    def num_classes(self) -> int:
        """Number of training classes of ``label``: all targets, or the products of the training split."""
        return self._num_train_classes

    # ------------------------------------------------------------------ draws

    def draw(self, epoch: int, split: str = "train") -> Draw:
        """The rows of ``epoch`` (train) or the fixed validation rows, from the sampler alone."""
        if split == "train":
            pool = self._readable(self.train_indices)
            return self.sampler.draw(
                self.label_codes, pool, self.seed, epoch, self.batch_size, self.database.dealers
            )
        rows = self._validation_draw()
        if rows is None:
            raise ConfigError(
                f"datamodule/sampler={self.sampler.name} gives no validation rows for this split"
            )
        return rows

    def _validation_draw(self) -> Draw | None:
        if len(self.val_indices) == 0:
            return None
        pool = self._readable(self.val_indices)
        return self.sampler.validation(
            self.label_codes, pool, self.seed, self.batch_size, self.database.dealers
        )

    def _readable(self, pool: np.ndarray) -> np.ndarray:
        """``pool`` without the cards whose image did not decode into a crop (counted when the crops were made)."""
        if self._statuses is None:
            return pool
        return pool[self._statuses[pool] != IMAGE_UNREADABLE]

    def train_dataloader(self) -> DataLoader:
        trainer = self._trainer_or_none()
        epoch = trainer.current_epoch if trainer is not None else 0
        if trainer is not None and trainer.reload_dataloaders_every_n_epochs != 1 and trainer.max_epochs != 1:
            rank_zero_warn(
                "PairDataModule draws fresh rows per epoch only with "
                "Trainer(reload_dataloaders_every_n_epochs=1); the rows of the first epoch are reused"
            )
        self._seed_epoch(epoch, trainer)
        items = self._card_items(train=True)  # decodes the crops first, where configured
        rows = self.draw(epoch, "train")
        seed = int(np.random.default_rng((self.seed, epoch, 2)).integers(2**31 - 1))
        dataset = self._dataset(rows, items, seed)
        # No DataLoader shuffle: the epoch's rows already come in a seeded random order, and a sampler's draws
        # would depend on Lightning's restart path (a resumed run must see the batches an uninterrupted one sees).
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
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
        if not self._has_val:
            return []
        items = self._card_items(train=False)
        rows = self.draw(0, "val")
        seed = int(np.random.default_rng((self.seed, 0, 3)).integers(2**31 - 1))
        dataset = self._dataset(rows, items, seed)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, **self._loader_args())

    def _dataset(self, rows: Draw, items: Sequence[Any], seed: int) -> DrawDataset:
        # the second of two views is always an augmented one
        second = self._card_items(train=True) if self.sampler.layout == "views" else items
        return DrawDataset(rows, self.sampler.layout, items, second, self.target_codes, seed=seed)

    # ------------------------------------------------------------------ payloads

    def _card_items(self, train: bool) -> Sequence[Any]:
        """Per-card payload source: a lazy image dataset (decoded files or crops), or the training view's texts."""
        augment = self.augment if train else None
        key = augment is not None
        if key not in self._items:
            if self.modality == "text":
                self._items[key] = self.database.texts(self.text_view)
            else:
                transform: Callable = (
                    augment.transform(self.image_size)
                    if augment is not None
                    else EvalTransform(self.image_size)
                )
                self._items[key] = CardImages(self._image_source(), transform)
        return self._items[key]

    def _image_source(self) -> Sequence[Any]:
        """Card position -> PIL image (each file decoded whole) or uint8 crop (decoded once, ``decoded_size``)."""
        paths = self.database.image_paths()
        if self.decoded_size is None:
            return ImageDataset(paths, transform=_identity, size_hint=self.image_size)
        if self._crops is None:
            self._crops, self._statuses = decode_crops(
                paths, self.decoded_size, self.pixel_cache, self.num_workers
            )
            report_statuses([str(p) for p in paths], self._statuses)
        return self._crops

    def _loader_args(self) -> dict[str, Any]:
        return dict(num_workers=self.num_workers, pin_memory=torch.cuda.is_available())

    def _trainer_or_none(self) -> pl.Trainer | None:
        return getattr(self, "trainer", None)


def _identity(image: Any) -> Any:
    return image


class CardImages:
    """Card position -> transformed image: ``transform(source[card])``; picklable for DataLoader workers."""

    def __init__(self, source: Sequence[Any], transform: Callable[[Any], torch.Tensor]) -> None:
        self.source = source
        self.transform = transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, card: int) -> torch.Tensor:
        return self.transform(self.source[card])


def _check_settings(
    modality: str,
    text_view: str,
    batch_size: int,
    num_workers: int,
    label: str,
    sampler: Any,
    decoded_size: int | None,
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
    if label not in LABELS:
        raise ConfigError(f"datamodule.label={label!r} is unknown; use one of {', '.join(LABELS)}")
    if not isinstance(sampler, Sampler):
        raise ConfigError(
            f"datamodule.sampler={sampler!r} is not a sampler; pick one with "
            "datamodule/sampler=pairs|m_per_class|distinct_cards|views|positives"
        )
    if sampler.layout == "views" and modality != "image":
        raise ConfigError("datamodule/sampler=views augments images; use modality=image or another sampler")
    if decoded_size is not None and (
        isinstance(decoded_size, bool) or not isinstance(decoded_size, int) or decoded_size < 8
    ):
        raise ConfigError(
            f"datamodule.decoded_size={decoded_size!r} must be an integer >= 8 (pixels), or null to decode each "
            "image file every epoch; set e.g. datamodule.decoded_size=64"
        )


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
