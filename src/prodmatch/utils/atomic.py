"""Atomic, durable file writes: write a temporary file in the target's folder, flush it, rename it into place.

Readers (a report, a concurrent run, a resumed job) see either the old file or the whole new one, never a
half-written one. The data reach the disk before the rename (``fsync`` of the file) and the rename before the
write counts as done (``fsync`` of the folder), so a power loss leaves the old file or the whole new one, never an
empty or short one under the final name. Files get the usual permissions (0666 minus the umask), not
``mkstemp``'s private 0600.

A file written through a memory map gets its blocks allocated first (:func:`allocated_memmap`): a full disk is
then an ``OSError`` at the start of the write, not a SIGBUS in the middle of it. :func:`is_disk_full` tells that
error apart, so caches can fall back to computing without them and tasks can name it in one line.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

# The errors of a disk (or a quota) with no room left.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# posix_fallocate answers these where the filesystem cannot allocate ahead; zeros are written instead.
_NO_FALLOCATE = frozenset({errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS})
_ZEROS = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_file(path: str | Path) -> None:
    """Flush ``path``'s data and metadata to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (a rename into it) to the disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # e.g. Windows: folders are not opened, renames are durable when they return
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in _NO_FALLOCATE:  # some filesystems refuse fsync on a folder
            raise
    finally:
        os.close(fd)


def _writer_tag() -> str:
    """This process as temporary file names carry it: host and process id."""
    host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
    return f"{host}-{os.getpid()}"


def new_temporary(path: str | Path) -> Path:
    """A new empty temporary file beside ``path`` (its folder made if needed), for :func:`commit` to publish.

    Its name carries the writer's host and process id, so :func:`remove_orphans` can tell a dead writer's file
    from a live one's.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_writer_tag()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: alive
        return True
    return True


def remove_orphans(folder: str | Path, recursive: bool = False) -> int:
    """Remove the temporary files in ``folder`` (and its subfolders when ``recursive``) whose writer on this host
    is no longer alive (a process killed mid-write, e.g. by SIGKILL or the OOM killer); returns how many. Other
    hosts' files are left alone."""
    host = _writer_tag().rsplit("-", 1)[0]
    removed = 0
    folder = Path(folder)
    for tmp in folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"):
        match = re.search(rf"\.{re.escape(host)}-(\d+)\.[^.]*\.tmp$", tmp.name)
        if match and not _alive(int(match.group(1))):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def commit(tmp: Path, path: str | Path) -> None:
    """Publish a written temporary file at ``path``: usual permissions, data flushed, renamed, folder flushed."""
    path = Path(path)
    os.chmod(tmp, 0o666 & ~_umask())
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is flushed and renamed to ``path`` (the folder then
    flushed too), on error removed."""
    tmp_path = new_temporary(path)
    try:
        yield tmp_path
        commit(tmp_path, path)
    except OSError as err:
        tmp_path.unlink(missing_ok=True)
        # a failed write() names no file: name the one being written
        if is_disk_full(err) and not err.filename:
            raise OSError(err.errno, os.strerror(err.errno), str(path)) from err
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented, key-sorted JSON atomically."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as a ``.npy`` file at exactly ``path`` atomically (no pickles)."""
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
    return Path(path)


def is_disk_full(err: BaseException | None) -> bool:
    """Whether ``err`` (or an error it was raised from) is a full disk or an exhausted quota."""
    seen = 0
    while err is not None and seen < 16:
        if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def allocate(path: str | Path, size: int, zeros_from: int = 0) -> None:
    """Reserve the blocks of the first ``size`` bytes of ``path`` (``OSError`` ENOSPC / EDQUOT when there is no
    room). Where the filesystem cannot allocate ahead, zeros are written from ``zeros_from`` (bytes before it
    hold data already) to ``size``."""
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except AttributeError:  # no posix_fallocate on this platform (macOS, Windows)
            pass
        except OSError as err:
            if err.errno not in _NO_FALLOCATE:
                raise
        chunk = bytes(_ZEROS)
        os.lseek(fd, zeros_from, os.SEEK_SET)
        for offset in range(zeros_from, size, _ZEROS):
            os.write(fd, chunk[: min(_ZEROS, size - offset)])
    finally:
        os.close(fd)


def allocated_memmap(path: str | Path, dtype: Any, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` file at ``path`` mapped for writing (``numpy.lib.format.open_memmap``) whose blocks are
    allocated before anything is written through the map: no room is an ``OSError`` here, never a SIGBUS later."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    try:
        allocate(path, int(array.offset) + int(array.nbytes), zeros_from=int(array.offset))
    except BaseException:
        del array
        raise
    return array
