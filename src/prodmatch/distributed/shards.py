"""Memory-mapped embedding shards: every process writes its rows with their input positions, rank 0 merges.

A shard folder (one per embedding, on a filesystem every process sees) holds, per rank ``r``:

- ``shard-r-vectors.npy``: float32 ``[capacity, dim]``, the rank's rows in the order it embedded them;
- ``shard-r-indices.npy``: int64 ``[capacity]``, each row's position in the inputs (-1: never written);
- ``shard-r-statuses.npy``: int8 ``[capacity]``, each row's image status (``data.images.IMAGE_*``; 0 for texts);

and, once merged, ``embeddings.npy`` (float32 ``[N, dim]``, input order) and ``statuses.npy`` (int8 ``[N]``).

The capacity is ceil(N / world): what Lightning's predict sampler gives a rank at most (rows r, r+W, ...), and
what a padded ``DistributedSampler`` gives every rank. A row written twice (padding repeats one) is the same
input's vector, so the merge keeps one copy; a row that no shard holds is an error.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from prodmatch.errors import one_line
from prodmatch.utils.atomic import allocated_memmap, atomic_path, is_disk_full, save_npy

__all__ = [
    "STATUSES_FILE",
    "VECTORS_FILE",
    "Collective",
    "Shard",
    "load_merged",
    "merge_on_rank_zero",
    "merge_shards",
    "rank_rows",
]

VECTORS_FILE = "embeddings.npy"
STATUSES_FILE = "statuses.npy"
_PARTS = ("vectors", "indices", "statuses")
_CHUNK_ROWS = 1 << 16  # rows copied at a time by the merge: bounded memory at any catalog size
_DISK_FULL = "no space left on the disk"


class Collective(Protocol):
    """What the merge needs from the processes' group (a Lightning strategy has both)."""

    def barrier(self, name: str | None = None) -> None: ...

    def broadcast(self, obj: Any, src: int = 0) -> Any: ...


def rank_rows(n: int, rank: int, world: int) -> range:
    """The rows rank ``rank`` of ``world`` embeds: r, r+W, r+2W, ... (the split of Lightning's predict sampler)."""
    return range(rank, n, world)


def _shard_path(folder: Path, rank: int, part: str) -> Path:
    return folder / f"shard-{rank}-{part}.npy"


class Shard:
    """One rank's shard, open for writing: ``write`` appends batches of rows, ``close`` flushes them."""

    def __init__(self, folder: str | Path, rank: int, n: int, world: int, dim: int) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.rank = rank
        self.capacity = -(-n // world)
        self.written = 0
        # space allocated before anything is written through the maps: a full disk is an OSError, never a SIGBUS
        self.vectors = allocated_memmap(
            _shard_path(folder, rank, "vectors"), np.float32, (self.capacity, dim)
        )
        self.indices = allocated_memmap(_shard_path(folder, rank, "indices"), np.int64, (self.capacity,))
        self.indices[:] = -1
        self.statuses = allocated_memmap(_shard_path(folder, rank, "statuses"), np.int8, (self.capacity,))

    def write(self, indices: Sequence[int], vectors: np.ndarray, statuses: Sequence[int]) -> None:
        """Append a batch: its rows' input positions, their vectors and their statuses."""
        end = self.written + len(indices)
        if end > self.capacity:
            raise RuntimeError(
                f"rank {self.rank} was given more than {self.capacity} rows, more than any split of the "
                "inputs gives one process; the sampler is not a distributed one"
            )
        self.indices[self.written : end] = np.asarray(indices, dtype=np.int64)
        self.vectors[self.written : end] = vectors
        self.statuses[self.written : end] = np.asarray(statuses, dtype=np.int8)
        self.written = end

    def close(self) -> None:
        for part in _PARTS:
            getattr(self, part).flush()
            setattr(self, part, None)  # drop the mapping: the file is complete


def _copy_shard(folder: Path, rank: int, out: np.ndarray, statuses: np.ndarray, seen: np.ndarray) -> None:
    """Scatter one shard's written rows to their input positions, a chunk at a time."""
    paths = [_shard_path(folder, rank, part) for part in _PARTS]
    if not all(p.is_file() for p in paths):
        raise RuntimeError(
            f"the shard of rank {rank} is missing in {folder}; every process must write to one folder "
            "(on several nodes, a filesystem they all share)"
        )
    vectors, indices, status = (np.load(p, mmap_mode="r") for p in paths)
    for start in range(0, len(indices), _CHUNK_ROWS):
        idx = np.asarray(indices[start : start + _CHUNK_ROWS])
        keep = idx >= 0
        rows = idx[keep]
        out[rows] = np.asarray(vectors[start : start + _CHUNK_ROWS])[keep]
        statuses[rows] = np.asarray(status[start : start + _CHUNK_ROWS])[keep]
        seen[rows] = True


def merge_shards(folder: str | Path, n: int, dim: int, world: int) -> None:
    """Assemble the ``world`` shards in ``folder`` into ``embeddings.npy`` / ``statuses.npy`` (input order),
    each row once, written atomically; the shard files are removed."""
    folder = Path(folder)
    seen = np.zeros(n, dtype=bool)
    statuses = np.zeros(n, dtype=np.int8)
    with atomic_path(folder / VECTORS_FILE) as tmp:
        out = allocated_memmap(tmp, np.float32, (n, dim))
        for rank in range(world):
            _copy_shard(folder, rank, out, statuses, seen)
        missing = np.flatnonzero(~seen)
        if missing.size:
            raise RuntimeError(f"{missing.size} of {n} rows are in no shard (e.g. row {missing[0]})")
        out.flush()
        del out
    save_npy(folder / STATUSES_FILE, statuses)
    for rank in range(world):
        for part in _PARTS:
            _shard_path(folder, rank, part).unlink()


def merge_on_rank_zero(
    folder: str | Path, n: int, dim: int, rank: int, world: int, group: Collective
) -> None:
    """Once every rank has closed its shard: rank 0 merges them; a merge error is raised on every rank."""
    group.barrier("prodmatch-shards-written")
    error = None
    if rank == 0:
        try:
            merge_shards(folder, n, dim, world)
        except (OSError, RuntimeError, ValueError) as err:
            error = one_line(err)  # sent to every rank, so none waits forever on a merge that failed
            if is_disk_full(err):
                error = f"{_DISK_FULL}: {error}"
    error = group.broadcast(error, src=0)
    if error:
        message = f"merging the embedding shards in {folder} failed: {error}"
        if error.startswith(_DISK_FULL):  # no room: the task's one error line, not a bug's traceback
            raise OSError(errno.ENOSPC, message, str(folder))
        raise RuntimeError(message)


def load_merged(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(vectors float32 [N, dim] memory-mapped read-only, statuses int8 [N]) of a merged shard folder."""
    folder = Path(folder)
    return np.load(folder / VECTORS_FILE, mmap_mode="r"), np.load(folder / STATUSES_FILE)
