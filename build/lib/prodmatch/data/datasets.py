"""The per-epoch datasets the PairDataModule serves: pairs of cards, or single cards / two views with labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, default_collate

from prodmatch.data.pairs import Pairs


class PairDataset(Dataset):
    """Map-style dataset of one epoch's pairs; ``items[i]`` is card i's payload (image tensor or text)."""

    def __init__(
        self,
        pairs: Pairs,
        items: Sequence[Any],
        target_codes: np.ndarray,
    ) -> None:
        self.pairs = pairs
        self.items = items
        self.target_codes = target_codes

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
