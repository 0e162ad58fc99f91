"""The per-epoch dataset the PairDataModule serves: a sampler's draw, each row's card(s) turned into payloads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from prodmatch.data.training.samplers import Draw


@contextmanager
def seeded(*key: int) -> Iterator[None]:
    """Run the block with torch's CPU RNG seeded from ``key``, restoring the caller's RNG state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(np.random.default_rng(key).integers(2**63 - 1)))
        yield


class DrawDataset(Dataset):
    """Map-style dataset of one draw; ``first[c]`` / ``second[c]`` are card c's payload for the row's first and
    second card (image tensor or text; ``second`` is an augmenting source for two-view rows).

    Items by ``layout`` (see :mod:`~prodmatch.data.training.samplers`): ``pairs``: ``a``, ``b``, ``same``,
    ``target_a``, ``target_b``; ``cards``: ``x``, ``label``; ``views`` and ``positives``: ``a``, ``b``, ``label``.
    With ``seed`` (the epoch's), side s of row i is augmented under an RNG seeded from (seed, i, s): augmentations
    depend on the epoch and the row alone, not on the process's history or the worker count, so a run resumed from
    a checkpoint draws exactly what an uninterrupted one does, and the same card twice in a batch (two views) gets
    two different augmentations.
    """

    def __init__(
        self,
        draw: Draw,
        layout: str,
        first: Sequence[Any],
        second: Sequence[Any] | None = None,
        target_codes: np.ndarray | None = None,
        seed: int | None = None,
    ) -> None:
        self.draw = draw
        self.layout = layout
        self.first = first
        self.second = first if second is None else second
        self.target_codes = target_codes
        self.seed = seed

    def _item(self, items: Sequence[Any], card: int, i: int, side: int) -> Any:
        if self.seed is None:
            return items[card]
        with seeded(self.seed, i, side):
            return items[card]

    def __len__(self) -> int:
        return len(self.draw)

    def __getitem__(self, i: int) -> dict[str, Any]:
        a = self._item(self.first, int(self.draw.first[i]), i, 0)
        if self.layout == "cards":
            return {"x": a, "label": int(self.draw.labels[i])}
        b_card = int(self.draw.second[i])
        b = self._item(self.second, b_card, i, 1)
        if self.layout == "pairs":
            codes = self.target_codes
            return {
                "a": a,
                "b": b,
                "same": bool(self.draw.same[i]),
                "target_a": int(codes[int(self.draw.first[i])]),
                "target_b": int(codes[b_card]),
            }
        return {"a": a, "b": b, "label": int(self.draw.labels[i])}
