"""Inter-process file locks around shared state (generated catalogs, local models, caches)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from prodmatch.errors import ProdmatchError

log = logging.getLogger("prodmatch")

DEFAULT_TIMEOUT_S = 3600.0


@contextmanager
def file_lock(target: str | Path, timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Hold ``<target>.lock`` while the block runs, so one process builds ``target`` and the others wait."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target.with_name(target.name + ".lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process to finish %s", target)
        try:
            lock.acquire(timeout=timeout)
        except Timeout as err:
            raise ProdmatchError(
                f"{target}: still locked by another process after {timeout:.0f} s; wait for it to finish or "
                f"remove the stale {lock.lock_file} if no prodmatch process is running"
            ) from err
    try:
        yield
    finally:
        lock.release()
