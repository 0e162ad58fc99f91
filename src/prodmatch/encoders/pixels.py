"""Decoded eval crops on disk: one uint8 ``[N, 3, S, S]`` memory-mapped ``.npy`` per image list and crop size.

Decoding JPEGs bounds image embedding: on a CPU the decoders share the cores with the forward pass, and on a GPU
the forward pass is 10-35x faster than a dozen decoding workers. An image's eval crop does not depend on the
weights, so a training run that embeds the same database at every evaluation, and every run of a sweep over it,
need decode it only once. The first pass writes each batch's crops here as it embeds them; later passes read
them back at memory speed (copied straight into pinned memory and sent to the GPU on a side stream) and
normalise them on the device exactly as before, so the embeddings are the same to the bit.

A store is named by the paths, the crop size and the store format, and remembers each file's identity (size,
mtime, inode and change time, or a hash of its bytes under ``data.identity=content``) as it was when it was
decoded. A read checks them while the forward pass runs (stat-ing every file costs about a
fifth of a ResNet18 pass on a GPU at 64 px, so it is overlapped rather than paid first); a replaced image makes
the pass fail with :class:`StaleStoreError` and the caller decodes again, rewriting the store.

Files: ``pixels-<size>-<digest>.json`` names the store's data files and holds the file identity; the data files
(``...-<token>.npy`` crops and ``...-<token>.status.npy``) are written in full before that JSON is replaced
atomically to point at them, and never change afterwards. So a concurrent run reads one whole store or none, never
the crops of one write with the identity of another; a rewrite removes the files it replaced. Every file is flushed
to the disk before the JSON names it. The crops file's space is allocated before the first crop is written through
its memory map, so a disk that fills up meanwhile is an error at the start of the write, never a SIGBUS in its
middle. When the disk lacks room for a store (or a write of it fails), the pass decodes as before, leaves no
temporary file and says so in one warning line (later passes in the process decode without trying that folder
again); a store file that is empty, short or unparsable is a miss (one
warning) and is written again. A writer killed mid-write (SIGKILL) leaves a temporary file, which the next writer
on the same host removes.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from prodmatch.errors import one_line
from prodmatch.utils.atomic import (
    allocated_memmap,
    commit,
    is_disk_full,
    new_temporary,
    remove_orphans,
    save_npy,
    write_json,
)
from prodmatch.utils.hashing import files_identity, stable_hash, texts_hash

if TYPE_CHECKING:
    import torch

__all__ = [
    "PixelStore",
    "PixelStoreDataset",
    "StaleStoreError",
    "StoreWriter",
    "open_store",
    "store_path",
    "store_writer",
]

log = logging.getLogger("prodmatch.data")

_FORMAT = 2  # bump when the crop (ResizeCenterCrop) or the layout changes
_CROP = "resize_center_crop_bilinear"
# Keep this share of the free disk for everything else: a store only goes where it takes less than half.
_MAX_SHARE_OF_FREE = 0.5
PREFETCH = 4  # batches read ahead of the forward pass
# Folders this process found without room for a store (said once): later passes decode without trying again.
_NO_ROOM: set[Path] = set()


class StaleStoreError(RuntimeError):
    """An image changed (its file identity) since the store was decoded: decode again."""


def store_path(root: str | Path, paths: Sequence[str], image_size: int) -> Path:
    """The JSON that names the store of ``paths`` at ``image_size`` (the files' identity is checked on reading)."""
    digest = stable_hash(_FORMAT, _CROP, int(image_size), texts_hash(paths))[:40]
    return Path(root).expanduser() / f"pixels-{image_size}-{digest}.json"


def _data_paths(path: Path, token: str) -> tuple[Path, Path]:
    """The crops and statuses of one write of the store named by ``path``."""
    stem = path.with_suffix("").name
    return path.with_name(f"{stem}-{token}.npy"), path.with_name(f"{stem}-{token}.status.npy")


def _published_token(path: Path) -> str | None:
    """The token the store's JSON names, if it can be read."""
    try:
        token = json.loads(path.read_text(encoding="utf-8")).get("token")
    except (OSError, ValueError, AttributeError):
        return None
    return token if isinstance(token, str) and token.isalnum() else None


def _files_identity(paths: Sequence[str]) -> str | None:
    """The files' identity (:func:`~prodmatch.utils.hashing.files_identity`); None when one cannot be read."""
    try:
        return files_identity(paths)
    except OSError:
        return None


class PixelStore:
    """A written store, opened read-only: ``pixels`` uint8 ``[N, 3, S, S]`` (memory map) and ``statuses`` int8."""

    def __init__(self, path: Path) -> None:
        self.path = path
        meta = json.loads(path.read_text(encoding="utf-8"))
        self.files: str = meta["files"]
        self.token: str = meta["token"]
        self.data_paths = _data_paths(path, self.token)
        self.pixels = np.load(self.data_paths[0], mmap_mode="r", allow_pickle=False)
        self.statuses = np.load(self.data_paths[1], allow_pickle=False)

    def matches(self, paths: Sequence[str]) -> bool:
        """Whether every file still has the identity it had when the store was decoded."""
        return _files_identity(paths) == self.files

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
        self,
        batch_size: int,
        device: torch.device,
        paths: Sequence[str] | None = None,
        prefetch: int = PREFETCH,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(uint8 crops [B, 3, S, S] on device, statuses [B])`` in order, read ``prefetch`` batches ahead.

        On a GPU each batch is copied on a side stream, so the copy of the next batch overlaps this one's forward.
        ``paths``: checked against the store's file identity meanwhile; after the last batch,
        :class:`StaleStoreError` if one changed (the batches were of the old images).
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
            check = pool.submit(self.matches, paths) if paths is not None else None
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
            if check is not None and not check.result():
                raise StaleStoreError(f"pixel store {self.path.name}: an image changed since it was decoded")


class PixelStoreDataset:
    """Items ``(uint8 crop [3, S, S], status)`` of a store, as :class:`~prodmatch.data.images.ImageDataset`
    gives them (Lightning's predict loop, a rank's share); the crops are memory-mapped in each worker."""

    def __init__(self, store: PixelStore) -> None:
        self.data_paths = store.data_paths  # this write's files, which never change
        self.statuses = store.statuses
        self._pixels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.statuses)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pixels": None}  # never pickle the memory map

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        import torch

        if self._pixels is None:
            self._pixels = np.load(self.data_paths[0], mmap_mode="r", allow_pickle=False)
        return torch.from_numpy(np.array(self._pixels[index])), int(self.statuses[index])


def open_store(root: str | Path, paths: Sequence[str], image_size: int) -> PixelStore | None:
    """The written store of ``paths`` at ``image_size``, or None (not written yet, or unreadable). Its file
    identity is not checked here: pass ``paths`` to :meth:`PixelStore.batches`, or call :meth:`PixelStore.matches`."""
    path = store_path(root, paths, image_size)
    if not path.is_file():
        return None
    try:
        store = PixelStore(path)
    except (OSError, ValueError, EOFError, KeyError, TypeError) as err:  # empty, short, foreign or replaced
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

    def __init__(self, path: Path, rows: int, image_size: int, files: str) -> None:
        self.path = path
        self.shape = (rows, 3, image_size, image_size)
        self.files = files  # the identity of the files as they are about to be decoded

    def tee(
        self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``batches`` unchanged while writing them; publish the store once the last one has passed.

        A pass that stops early (an error, an interrupt) leaves no store behind.
        """
        token = secrets.token_hex(6)
        pixels_path, statuses_path = _data_paths(self.path, token)
        opened = self._open(pixels_path)
        if opened is None:  # no room (said once): the pass goes on decoding
            yield from batches
            return
        tmp, pixels = opened
        statuses = np.zeros(self.shape[0], dtype=np.int8)
        start = 0
        try:
            for crops, status in batches:
                stop = start + len(crops)
                pixels[start:stop] = crops.cpu().numpy()
                statuses[start:stop] = status.cpu().numpy()
                start = stop
                yield crops, status
            if start != self.shape[0]:
                raise RuntimeError(f"pixel store {self.path.name}: {start} of {self.shape[0]} rows written")
            pixels.flush()
        except BaseException:  # the pass stopped early: no store, no temporary file
            del pixels
            tmp.unlink(missing_ok=True)
            raise
        del pixels
        try:
            commit(tmp, pixels_path)
            save_npy(statuses_path, statuses)
            self._publish(token)
        except OSError as err:  # e.g. the disk filled up meanwhile: this write's files go, the pass is done
            for mine in (tmp, *_data_paths(self.path, token)):
                mine.unlink(missing_ok=True)
            self._not_written(err)
            return
        log.info("pixel store written: %d crops of %d px -> %s", self.shape[0], self.shape[2], self.path.name)

    def _open(self, pixels_path: Path) -> tuple[Path, np.memmap] | None:
        """A temporary crops file with its space allocated, mapped for writing; None (warned) when it cannot be."""
        try:
            tmp = new_temporary(pixels_path)
        except OSError as err:
            self._not_written(err)
            return None
        try:
            return tmp, allocated_memmap(tmp, np.uint8, self.shape)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            self._not_written(err)
            return None

    def _not_written(self, err: OSError) -> None:
        if is_disk_full(err):
            _NO_ROOM.add(self.path.parent)
        why = "no space left on the disk (or quota)" if is_disk_full(err) else one_line(err)
        log.warning(
            "pixel store %s not written (%s) in %s; images are decoded every pass (free disk space there, or set "
            "encoders.image.pixel_cache=null to stop trying)",
            self.path.name,
            why,
            self.path.parent,
        )

    def _publish(self, token: str) -> None:
        """Point the store's JSON at this write's files (one atomic replace), then remove the ones it replaced.

        A concurrent run that already published a whole store of the same files keeps it; this write's files go.
        """
        try:
            previous: PixelStore | None = PixelStore(self.path)
        except (OSError, ValueError, EOFError, KeyError, TypeError):
            previous = None
        if previous is not None and previous.files == self.files and previous.pixels.shape == self.shape:
            for mine in _data_paths(self.path, token):
                mine.unlink(missing_ok=True)
            return
        earlier = (
            previous.token if previous is not None else _published_token(self.path)
        )  # e.g. a corrupt one
        stale = [*_data_paths(self.path, earlier)] if earlier and earlier != token else []
        if previous is None and earlier is None:
            stale = self._unnamed_writes(token)  # a torn JSON names no write: the ones before it go
        write_json(self.path, {"files": self.files, "rows": self.shape[0], "token": token})
        for path in stale:  # a reader that mapped them keeps its map
            path.unlink(missing_ok=True)

    def _unnamed_writes(self, token: str) -> list[Path]:
        """The data files of this store that an unreadable (torn) JSON no longer names: those older than it. A
        concurrent write's files are newer, and stay."""
        try:
            stamp = self.path.stat().st_mtime_ns
        except OSError:  # no JSON at all: the first write
            return []
        found = []
        for path in self.path.parent.glob(f"{self.path.with_suffix('').name}-*.npy"):
            try:
                if token not in path.name and path.stat().st_mtime_ns <= stamp:
                    found.append(path)
            except OSError:  # removed meanwhile
                continue
        return found


def store_writer(root: str | Path, paths: Sequence[str], image_size: int) -> StoreWriter | None:
    """A writer for the store of ``paths``, or None (a file that cannot be read, an unusable folder, or no room)."""
    files = _files_identity(paths)
    if files is None:
        return None  # a missing file: decode every pass (its row comes back NaN and counted)
    path = store_path(root, paths, image_size)
    if path.parent in _NO_ROOM:
        return None  # no room there, said once already
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_orphans(path.parent)  # what writers killed mid-write on this host left
        free = shutil.disk_usage(path.parent).free
    except OSError as err:
        log.warning(
            "pixel store skipped: %s (%s); images are decoded every pass (set encoders.image.pixel_cache to a "
            "writable folder, or null)",
            path.parent,
            one_line(err),
        )
        return None
    needed = len(paths) * 3 * image_size * image_size
    if needed > _MAX_SHARE_OF_FREE * free:
        _NO_ROOM.add(path.parent)
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
    return StoreWriter(path, len(paths), image_size, files)
