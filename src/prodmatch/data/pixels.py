"""Decoded eval crops on disk: one uint8 ``[N, 3, S, S]`` memory-mapped ``.npy`` per image list and crop size.

Decoding JPEGs bounds image embedding: on a CPU the decoders share the cores with the forward pass, and on a GPU
the forward pass is 10-35x faster than a dozen decoding workers. An image's eval crop does not depend on the
weights, so a training run that embeds the same database at every evaluation, and every run of a sweep over it,
need decode it only once. The first pass writes each batch's crops here as it embeds them; later passes read
them back at memory speed (copied straight into pinned memory and sent to the GPU on a side stream) and
normalise them on the device exactly as before, so the embeddings are the same to the bit.

A store is keyed like the embedding cache: the paths plus each file's size and mtime, the crop size and the
store format, so a replaced image gives a new store and stale ones are simply never read again. It is written
atomically (the statuses first, then the pixels renamed into place), so a concurrent run reads a whole store or
none. When the disk lacks room for it, the pass decodes as before and says so in one warning line.
"""

from __future__ import annotations

import logging
import shutil
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from prodmatch.errors import one_line
from prodmatch.utils.atomic import atomic_path, save_npy
from prodmatch.utils.hashing import stable_hash, stats_hash, texts_hash

if TYPE_CHECKING:
    import torch

__all__ = ["PixelStore", "PixelStoreDataset", "StoreWriter", "open_store", "store_path", "store_writer"]

log = logging.getLogger("prodmatch.data")

_FORMAT = 1  # bump when the crop (ResizeCenterCrop) or the layout changes
_CROP = "resize_center_crop_bilinear"
# Keep this share of the free disk for everything else: a store only goes where it takes less than half.
_MAX_SHARE_OF_FREE = 0.5
PREFETCH = 4  # batches read ahead of the forward pass


def store_path(root: str | Path, paths: Sequence[str], image_size: int) -> Path | None:
    """Where the store of ``paths`` at ``image_size`` lives; None when a file cannot be stat-ed (not cached)."""
    try:
        identity = f"{texts_hash(paths)}:{stats_hash(paths)}"
    except OSError:
        return None  # a missing file: decode every pass (its row comes back NaN and counted)
    digest = stable_hash(_FORMAT, _CROP, int(image_size), identity)[:40]
    return Path(root).expanduser() / f"pixels-{image_size}-{digest}.npy"


def _status_path(path: Path) -> Path:
    return path.with_suffix(".status.npy")


class PixelStore:
    """A written store, opened read-only: ``pixels`` uint8 ``[N, 3, S, S]`` (memory map) and ``statuses`` int8."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pixels = np.load(path, mmap_mode="r", allow_pickle=False)
        self.statuses = np.load(_status_path(path), allow_pickle=False)

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    def _read(self, start: int, stop: int, pin: bool) -> torch.Tensor:
        """Rows ``start:stop`` as a uint8 tensor: one copy out of the page cache (pinned for a GPU)."""
        import torch

        block = self.pixels[start:stop]
        tensor = torch.empty(block.shape, dtype=torch.uint8, pin_memory=pin)
        np.copyto(tensor.numpy(), block)  # numpy releases the GIL: the forward pass runs meanwhile
        return tensor

    def batches(
        self, batch_size: int, device: torch.device, prefetch: int = PREFETCH
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(uint8 crops [B, 3, S, S] on device, statuses [B])`` in order, read ``prefetch`` batches ahead.

        On a GPU each batch is copied on a side stream, so the copy of the next batch overlaps this one's forward.
        """
        import torch

        cuda = device.type == "cuda"
        stream = torch.cuda.Stream(device) if cuda else None

        def load(start: int) -> tuple[torch.Tensor, torch.Tensor, torch.cuda.Event | None]:
            stop = min(start + batch_size, len(self))
            crops = self._read(start, stop, pin=cuda)
            statuses = torch.from_numpy(self.statuses[start:stop].copy())
            if stream is None:
                return crops, statuses, None
            with torch.cuda.stream(stream):
                crops = crops.to(device, non_blocking=True)
                done = torch.cuda.Event()
                done.record(stream)
            return crops, statuses, done

        starts = iter(range(0, len(self), batch_size))
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="pixel-store") as pool:
            pending: deque[Future] = deque(pool.submit(load, s) for s in islice(starts, prefetch))
            while pending:
                crops, statuses, done = pending.popleft().result()
                next_start = next(starts, None)
                if next_start is not None:
                    pending.append(pool.submit(load, next_start))
                if done is not None:
                    current = torch.cuda.current_stream(device)
                    current.wait_event(done)
                    crops.record_stream(current)  # allocated on the side stream, used on this one
                yield crops, statuses


class PixelStoreDataset:
    """Items ``(uint8 crop [3, S, S], status)`` of a store, as :class:`~prodmatch.data.images.ImageDataset`
    gives them (Lightning's predict loop, a rank's share); the memory map is opened in each worker."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._store: PixelStore | None = None
        self._rows = int(np.load(_status_path(path), allow_pickle=False).shape[0])

    def __len__(self) -> int:
        return self._rows

    def __getstate__(self) -> dict:
        return {"path": self.path, "_store": None, "_rows": self._rows}  # never pickle the memory map

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        import torch

        if self._store is None:
            self._store = PixelStore(self.path)
        return torch.from_numpy(np.array(self._store.pixels[index])), int(self._store.statuses[index])


def open_store(root: str | Path, paths: Sequence[str], image_size: int) -> PixelStore | None:
    """The written store of ``paths`` at ``image_size``, or None (not written yet, or unreadable)."""
    path = store_path(root, paths, image_size)
    if path is None or not path.is_file():
        return None
    try:
        store = PixelStore(path)
    except (OSError, ValueError) as err:  # truncated or foreign file: decode and write it again
        log.warning("pixel store %s unreadable (%s); decoding again", path.name, one_line(err))
        return None
    expected = (len(paths), 3, image_size, image_size)
    if store.pixels.shape != expected or store.pixels.dtype != np.uint8 or len(store.statuses) != len(paths):
        log.warning(
            "pixel store %s has shape %s, expected %s; decoding again",
            path.name,
            store.pixels.shape,
            expected,
        )
        return None
    return store


class StoreWriter:
    """Writes the store of ``rows`` crops at ``image_size`` to ``path`` from the batches of a decoding pass."""

    def __init__(self, path: Path, rows: int, image_size: int) -> None:
        self.path = path
        self.shape = (rows, 3, image_size, image_size)

    def tee(
        self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``batches`` unchanged while writing them; publish the store once the last one has passed.

        A pass that stops early (an error, an interrupt) leaves no store behind.
        """
        with atomic_path(self.path) as tmp:
            pixels = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=self.shape)
            statuses = np.zeros(self.shape[0], dtype=np.int8)
            start = 0
            for crops, status in batches:
                stop = start + len(crops)
                pixels[start:stop] = crops.cpu().numpy()
                statuses[start:stop] = status.cpu().numpy()
                start = stop
                yield crops, status
            if start != self.shape[0]:
                raise RuntimeError(f"pixel store {self.path.name}: {start} of {self.shape[0]} rows written")
            pixels.flush()
            del pixels
            save_npy(_status_path(self.path), statuses)  # before the rename publishes the pixels
        log.info("pixel store written: %d crops of %d px -> %s", self.shape[0], self.shape[2], self.path.name)


def store_writer(root: str | Path, paths: Sequence[str], image_size: int) -> StoreWriter | None:
    """A writer for the store of ``paths``, or None (files that cannot be stat-ed, or no room on the disk)."""
    path = store_path(root, paths, image_size)
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    needed = len(paths) * 3 * image_size * image_size
    free = shutil.disk_usage(path.parent).free
    if needed > _MAX_SHARE_OF_FREE * free:
        log.warning(
            "pixel store skipped: %d crops of %d px need %.1f GB, over half the %.1f GB free in %s; images are "
            "decoded every pass (free disk space, or set encoders.image.pixel_cache=null to stop trying)",
            len(paths),
            image_size,
            needed / 1e9,
            free / 1e9,
            path.parent,
        )
        return None
    return StoreWriter(path, len(paths), image_size)
