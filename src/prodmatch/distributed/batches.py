"""One batch of an encoder's inputs embedded at a time: Lightning's predict step and a rank's share in fit.

Items carry their position in the inputs, so a batch says which rows it holds whatever sampler drew it. Images
go through the encoder's :class:`~prodmatch.encoders.image_embedder.ImageBatchEmbedder` (decoded in DataLoader
workers, NaN rows for unreadable files, their statuses kept), batch by batch; a text encoder embeds a process's
whole share in one ``encode`` call (one batch), as it would embed a list on one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from prodmatch.distributed.shards import Shard
from prodmatch.encoders.base import IMAGE_MODALITY, Encoder
from prodmatch.encoders.image_embedder import ImageBatchEmbedder

__all__ = ["BatchEmbedder", "IndexedInputs", "embed_share"]


class IndexedInputs(Dataset):
    """Items ``(position, item)`` of ``base`` over ``rows`` of it (all by default)."""

    def __init__(self, base: Sequence[Any], rows: Sequence[int] | None = None) -> None:
        self.base = base
        self.rows = range(len(base)) if rows is None else rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        row = self.rows[i]
        return row, self.base[row]


class BatchEmbedder:
    """How ``encoder`` embeds a batch ``(positions, inputs)``: ``__call__`` gives (positions, rows, statuses)."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.images: ImageBatchEmbedder | None = (
            encoder.embedder if encoder.modality == IMAGE_MODALITY else None
        )

    @property
    def network(self) -> nn.Module | None:
        """The encoder's torch network, if it has one (a Lightning module registers it to place it)."""
        net = self.encoder.network
        return net if isinstance(net, nn.Module) else None

    def loader(self, inputs: Sequence[Any], rows: Sequence[int] | None = None) -> DataLoader:
        """Batches of ``(positions, inputs)`` over ``rows`` of ``inputs`` (all by default), in that order."""
        if self.images is not None:
            base = self.images.dataset([str(p) for p in inputs])
            batch_size, workers = self.images.batch_size, self.images.num_workers
        else:
            base, workers = [str(t) for t in inputs], 0
            batch_size = max(1, len(base) if rows is None else len(rows))  # the whole share at once
        return DataLoader(
            IndexedInputs(base, rows),
            batch_size=batch_size,
            shuffle=False,
            num_workers=workers,
            pin_memory=self.images is not None and torch.cuda.is_available(),
        )

    def __call__(self, batch: tuple[torch.Tensor, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        positions, items = batch
        positions = positions.cpu().numpy()
        if self.images is not None:
            images, statuses = items
            return positions, self.images.embed_batch(images, statuses), statuses.cpu().numpy()
        vectors = self.encoder.encode(list(items)).vectors
        return positions, vectors, np.zeros(len(positions), dtype=np.int8)


def embed_share(embedder: BatchEmbedder, inputs: Sequence[Any], rows: Sequence[int], shard: Shard) -> None:
    """Embed ``rows`` of ``inputs`` into ``shard`` (a rank's share inside fit; the module is in eval mode).

    Images stream through the image embedder's own loop (one batch in flight), as a single process embeds them.
    """
    loader = embedder.loader(inputs, rows)
    if embedder.images is not None:
        batches = ((positions.numpy(), images, status) for positions, (images, status) in loader)
        embedder.images.stream(batches, shard.write, len(rows))
        return
    with torch.inference_mode():
        for batch in loader:
            shard.write(*embedder(batch))
