"""The per-epoch datasets the PairDataModule serves: pairs of cards, or single cards / two views with labels."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from prodmatch.data.training.pairs import Pairs


@contextmanager
def seeded(*key: int) -> Iterator[None]:
    """Run the block with torch's CPU RNG seeded from ``key``, restoring the caller's RNG state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(np.random.default_rng(key).integers(2**63 - 1)))
        yield


class PairDataset(Dataset):
    """Map-style dataset of one epoch's pairs; ``items[i]`` is card i's payload (image tensor or text).

    With ``seed`` (the epoch's), each side of pair i is augmented under an RNG seeded from (seed, i, side): the
    augmentations depend on the epoch and the pair alone, not on the process's history or the worker count, so a
    run resumed from a checkpoint draws exactly what an uninterrupted one does.
    """

    def __init__(
        self,
        pairs: Pairs,
        items: Sequence[Any],
        target_codes: np.ndarray,
        seed: int | None = None,
    ) -> None:
        self.pairs = pairs
        self.items = items
        self.target_codes = target_codes
        self.seed = seed

    def _item(self, card: int, i: int, side: int) -> Any:
        if self.seed is None:
            return self.items[card]
        with seeded(self.seed, i, side):
            return self.items[card]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        a, b = int(self.pairs.anchor[i]), int(self.pairs.other[i])
        item = {
            "a": self._item(a, i, 0),
            "b": self._item(b, i, 1),
            "same": bool(self.pairs.same[i]),
            "target_a": int(self.target_codes[a]),
            "target_b": int(self.target_codes[b]),
        }
        return item


class CardDataset(Dataset):
    """Single cards with a class label (``m_per_class``), or two views of each card (``views``)."""

    def __init__(
        self,
        positions: np.ndarray,
        items: Sequence[Any],
        labels: np.ndarray,
        second: Sequence[Any] | None = None,
    ) -> None:
        self.positions = positions
        self.items = items
        self.labels = labels
        self.second = second  # a second payload source (another augmentation) for two-view batches

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> dict[str, Any]:
        pos = int(self.positions[i])
        if self.second is None:
            return {"x": self.items[pos], "label": int(self.labels[pos])}
        return {"a": self.items[pos], "b": self.second[pos], "label": int(self.labels[pos])}


def positives_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """(a, b, label) batches: the pair's shared class comes in as ``target_a`` (see _class_loader)."""
    batch = default_collate(items)
    return {"a": batch["a"], "b": batch["b"], "label": batch["target_a"]}
