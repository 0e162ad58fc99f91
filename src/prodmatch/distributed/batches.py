"""One batch of an encoder's inputs embedded at a time: Lightning's predict step and a rank's share in fit.

Items carry their position in the inputs, so a batch says which rows it holds whatever sampler drew it. Images
go through :meth:`ImageEncoder.embed_batch` (decoded in DataLoader workers, NaN rows for unreadable files, their
statuses kept); texts through the encoder's own ``encode``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from prodmatch.distributed.shards import Shard

__all__ = ["BatchEmbedder", "IndexedInputs", "embed_share", "innermost"]

TEXT_BATCH = 256  # rows per batch for text encoders that set no batch_size (TF-IDF)


def innermost(encoder: Any) -> Any:
    """The encoder doing the work, under wrappers that keep theirs as ``inner`` (ModuleEncoder, ours)."""
    while hasattr(encoder, "inner"):
        encoder = encoder.inner
    return encoder


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


@contextmanager
def _quiet(encoder: Any) -> Iterator[None]:
    """No per-call progress bar from an encoder called once per batch (the loop shows its own)."""
    progress = getattr(encoder, "progress", None)
    if progress is not None:
        encoder.progress = False
    try:
        yield
    finally:
        if progress is not None:
            encoder.progress = progress


class BatchEmbedder:
    """How ``encoder`` embeds a batch ``(positions, inputs)``: ``__call__`` gives (positions, rows, statuses)."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = innermost(encoder)
        self.images = hasattr(self.encoder, "embed_batch")

    @property
    def network(self) -> nn.Module | None:
        """The encoder's torch network, if it has one (a Lightning module registers it to place it)."""
        model = getattr(self.encoder, "model", None)
        return model if isinstance(model, nn.Module) else None

    def loader(self, inputs: Sequence[Any], rows: Sequence[int] | None = None) -> DataLoader:
        """Batches of ``(positions, inputs)`` over ``rows`` of ``inputs`` (all by default), in that order."""
        if self.images:
            base, workers = self.encoder.dataset([str(p) for p in inputs]), self.encoder.num_workers
        else:
            base, workers = [str(t) for t in inputs], 0
        return DataLoader(
            IndexedInputs(base, rows),
            batch_size=int(getattr(self.encoder, "batch_size", TEXT_BATCH)),
            shuffle=False,
            num_workers=workers,
            pin_memory=self.images and torch.cuda.is_available(),
        )

    def __call__(self, batch: tuple[torch.Tensor, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        positions, items = batch
        positions = positions.cpu().numpy()
        if self.images:
            images, statuses = items
            return positions, self.encoder.embed_batch(images, statuses), statuses.cpu().numpy()
        with _quiet(self.encoder):
            vectors = self.encoder.encode(list(items))
        return positions, vectors, np.zeros(len(positions), dtype=np.int8)


def embed_share(embedder: BatchEmbedder, inputs: Sequence[Any], rows: Sequence[int], shard: Shard) -> None:
    """Embed ``rows`` of ``inputs`` into ``shard``, in eval and inference mode (a rank's share inside fit)."""
    net = embedder.network
    was_training = net is not None and net.training
    if net is not None:
        net.eval()
    try:
        with torch.inference_mode():
            for batch in embedder.loader(inputs, rows):
                shard.write(*embedder(batch))
    finally:
        if net is not None:
            net.train(was_training)
