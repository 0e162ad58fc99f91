"""Faults the tests inject: a disk with no room left, files replaced behind a cache's back.

A full disk is a small tmpfs, filled up, where the tests run as root and may mount one; elsewhere every write under
the folder raises ENOSPC instead, in this process (:func:`no_room`) and in the entry points a test starts with
:func:`no_room_env` (through ``tests/helpers/enospc/sitecustomize.py``).
"""

from __future__ import annotations

import errno
import functools
import io
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

ENOSPC_ENV = "PRODMATCH_TEST_ENOSPC"  # a folder under which writes raise ENOSPC (the fallback)
_HOOK_DIR = Path(__file__).resolve().parent / "enospc"
_FILLER = ".filler"


@functools.cache
def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root, and a kernel that lets it)."""
    if os.name != "posix" or os.geteuid() != 0 or os.environ.get("PRODMATCH_TEST_NO_TMPFS"):
        return False
    probe = Path("/tmp") / f"prodmatch-tmpfs-probe-{uuid.uuid4().hex[:8]}"
    probe.mkdir()
    try:
        if _mount(probe, 64):
            subprocess.run(["umount", str(probe)], check=False)
            return True
        return False
    finally:
        probe.rmdir()


def _mount(path: Path, size_kb: int) -> bool:
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)]
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


@contextmanager
def small_disk(path: Path, size_kb: int) -> Iterator[bool]:
    """A tmpfs of ``size_kb`` at ``path`` (made if needed) while the block runs; yields whether it was mounted
    (False: no tmpfs here, ``path`` is an ordinary folder)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = can_mount() and _mount(path, size_kb)
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> None:
    """Fill the filesystem of ``folder`` to the last byte (a file of zeros, written until ENOSPC)."""
    chunk = bytes(1 << 16)
    with open(folder / _FILLER, "ab", buffering=0) as fh:
        for size in (1 << 16, 4096, 512, 1):
            try:
                while True:
                    fh.write(chunk[:size])
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise


def temporaries(folder: Path) -> list[Path]:
    """The temporary files of atomic writes under ``folder``."""
    return sorted(p for p in folder.rglob(".*.tmp"))


# ------------------------------------------------------------------------------------- the fallback: injected
def _under(path: object, root: str) -> bool:
    try:
        return os.path.realpath(os.fspath(path)).startswith(root + os.sep)
    except TypeError:  # a file descriptor
        return False


def _fd_under(fd: int, root: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith(root + os.sep)
    except OSError:
        return False


def _full(path: object = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), None if path is None else os.fspath(path))


_BLOCK = 4096


class _NoRoomFile:
    """A file opened for writing on the full disk: a write past the blocks it holds already raises ENOSPC (an
    overwrite in place fits, as on a real disk), the rest is the real file's."""

    def __init__(self, fh, held: int) -> None:
        self._fh = fh
        self._held = -(-held // _BLOCK) * _BLOCK

    def write(self, data) -> int:
        if len(data) and self._fh.tell() + len(data) > self._held:
            raise _full()
        return self._fh.write(data)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()

    def __iter__(self):
        return iter(self._fh)

    def __getattr__(self, name: str):
        return getattr(self._fh, name)


def install_enospc(root: str | Path) -> None:
    """From now on in this process, every write under ``root`` raises ENOSPC (files can still be made, read and
    removed), like a disk with no room left. For the processes a test starts: :func:`no_room_env`."""
    root = os.path.realpath(root)
    real_open, real_fallocate, real_write = io.open, getattr(os, "posix_fallocate", None), os.write

    def open_(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        if not any(c in mode for c in "wax+") or not _under(file, root):
            return fh
        return _NoRoomFile(fh, 0 if "w" in mode else os.fstat(fh.fileno()).st_size)

    def fallocate(fd, offset, length):
        if _fd_under(fd, root):
            raise _full()
        return real_fallocate(fd, offset, length)

    def write(fd, data):
        if len(data) and _fd_under(fd, root):
            raise _full()
        return real_write(fd, data)

    io.open = open_
    import builtins

    builtins.open = open_
    if real_fallocate is not None:
        os.posix_fallocate = fallocate
    os.write = write


@contextmanager
def filler(folder: Path) -> Iterator[Callable[[], None]]:
    """A function that leaves ``folder`` with no room from when it is called (e.g. in the middle of a task) to the
    end of the block: it fills the tmpfs mounted there, or else injects ENOSPC under it in this process."""
    import builtins

    saved = (io.open, builtins.open, getattr(os, "posix_fallocate", None), os.write)

    def fill_up() -> None:
        if os.path.ismount(folder):
            fill(folder)
        else:
            install_enospc(folder)

    try:
        yield fill_up
    finally:
        io.open, builtins.open, fallocate, os.write = saved
        if fallocate is not None:
            os.posix_fallocate = fallocate
        (folder / _FILLER).unlink(missing_ok=True)


@contextmanager
def no_room(folder: Path, size_kb: int = 512) -> Iterator[None]:
    """``folder`` with no room left while the block runs: a small tmpfs, filled, or else injected ENOSPC."""
    with small_disk(folder, size_kb), filler(folder) as fill_up:
        fill_up()
        yield


def no_room_env(folder: Path, mounted: bool) -> dict[str, str]:
    """Environment for an entry point a test starts, so that ``folder`` has no room in it too: nothing more on a
    filled tmpfs; otherwise the ENOSPC hook, on the path before this checkout's sources."""
    if mounted:
        return {}
    path = os.pathsep.join(p for p in (str(_HOOK_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, ENOSPC_ENV: str(folder)}


# ------------------------------------------------------------------------------------ files replaced in place
def same_size_image(path: Path, colour: tuple[int, int, int]) -> bytes:
    """Bytes of another picture (one colour, the same dimensions and format) exactly as long as ``path``'s: a
    shorter encoding padded with zeros after its end marker, which decoders ignore."""
    size = path.stat().st_size
    with Image.open(path) as img:
        dims, fmt = img.size, img.format
    for quality in (75, 40, 10):
        buffer = io.BytesIO()
        Image.new("RGB", dims, colour).save(buffer, format=fmt, quality=quality)
        data = buffer.getvalue()
        if len(data) <= size:
            return data + bytes(size - len(data))
    raise ValueError(f"{path}: no one-colour picture of {dims} fits in {size} bytes")


def replace_keeping_size_and_mtime(path: Path, data: bytes, in_place: bool = True) -> None:
    """Replace ``path``'s bytes with ``data`` (same length) and give it back its mtime: in place (``cp -p``,
    ``touch -r``) or through a new file renamed over it (``rsync -a``, an archive)."""
    st = path.stat()
    assert len(data) == st.st_size, "the replacement must keep the size"
    if in_place:
        with open(path, "r+b") as fh:
            fh.write(data)
    else:
        tmp = path.with_name(path.name + ".new")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
