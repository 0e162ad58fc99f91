"""Decoded training crops: each database image decoded once per run into a uint8 centre crop, augmented from there.

Decoding a full-size JPEG costs milliseconds; a training run at 32-64 px would decode every card every epoch. The
crops are the eval crops (:class:`~prodmatch.data.images.ResizeCenterCrop` at ``size``) that the image encoder
embeds, so a crop size equal to the eval image size shares one pixel store (:mod:`prodmatch.encoders.pixels`) with
the retrieval callback: whichever comes first decodes, the other reads. The store is keyed by the image paths and
the crop size and is not used when an image changed size or mtime since (it is decoded and written again).
Without a store folder the crops are decoded into memory, once per run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from prodmatch.data.images import IMAGE_UNREADABLE, STATUS_REASONS, ImageDataset, build_transform
from prodmatch.encoders.pixels import open_store, store_writer

log = logging.getLogger("prodmatch.data")

DECODE_BATCH = 256


class Crops:
    """uint8 crops ``[3, S, S]`` by card position: an in-memory array, or a pixel store's file memory-mapped in
    each DataLoader worker (never pickled whole)."""

    def __init__(self, pixels: np.ndarray | None = None, path: Path | None = None) -> None:
        if (pixels is None) == (path is None):
            raise ValueError("Crops takes the pixels or the path of a pixel store's file")
        self.path = path
        self._pixels = pixels

    def _array(self) -> np.ndarray:
        if self._pixels is None:
            self._pixels = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return self._pixels

    def __len__(self) -> int:
        return int(self._array().shape[0])

    def __getitem__(self, card: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self._array()[card]))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.path is not None:
            state["_pixels"] = None  # each worker maps the file itself
        return state


def decode_crops(
    paths: Sequence[str | Path], size: int, pixel_cache: str | Path | None = None, num_workers: int = 2
) -> tuple[Crops, np.ndarray]:
    """(crops, status per card: IMAGE_OK / IMAGE_TRUNCATED / IMAGE_UNREADABLE) of ``paths`` at ``size`` px.

    Read from the pixel store under ``pixel_cache`` when one is written and its files are unchanged; else decoded
    (in ``num_workers`` processes) and, with ``pixel_cache``, written there for the next run. An unreadable image
    gives a blank crop and the status that says so; the caller leaves that card out.
    """
    names = [str(p) for p in paths]
    store = open_store(pixel_cache, names, size) if pixel_cache else None
    if store is not None and store.matches(names):
        log.info(
            "training crops: %d images at %d px read from the pixel store %s",
            len(names),
            size,
            store.path.name,
        )
        return Crops(path=store.data_paths[0]), np.array(store.statuses)
    dataset = ImageDataset(names, build_transform(size, normalize=False), size_hint=size, with_status=True)
    loader = DataLoader(dataset, batch_size=DECODE_BATCH, shuffle=False, num_workers=num_workers)
    writer = store_writer(pixel_cache, names, size) if pixel_cache else None
    pixels = np.empty((len(names), 3, size, size), dtype=np.uint8)
    statuses = np.empty(len(names), dtype=np.int8)
    start = 0
    for crops, status in writer.tee(loader) if writer is not None else loader:
        stop = start + len(crops)
        pixels[start:stop] = crops.numpy()
        statuses[start:stop] = status.numpy()
        start = stop
    log.info("training crops: %d images decoded once at %d px", len(names), size)
    return Crops(pixels=pixels), statuses


def report_statuses(paths: Sequence[str | Path], statuses: np.ndarray) -> dict[str, int]:
    """Counts by problem (``unreadable_image``, ``truncated_image``), logged in one warning line naming a file."""
    counts: dict[str, int] = {}
    parts = []
    for code, reason in STATUS_REASONS.items():
        rows = np.flatnonzero(statuses == code)
        if rows.size:
            counts[reason] = int(rows.size)
            parts.append(f"{rows.size} {reason.replace('_', ' ')}(s), e.g. {paths[rows[0]]}")
    if parts:
        log.warning(
            "training crops: %s; unreadable cards are left out of training, truncated ones are used as decoded",
            "; ".join(parts),
        )
    return counts


__all__ = ["IMAGE_UNREADABLE", "Crops", "decode_crops", "report_statuses"]
