"""Inter-process file locks: around shared state (generated catalogs, local models, caches), and on run dirs (a
second process cannot write into a run dir that a live process holds)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from prodmatch.errors import ProdmatchError
from prodmatch.utils.atomic import remove_orphans

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


RUN_LOCK = ".run.lock"
# Set in the processes a distributed launcher starts beside rank 0 (they share rank 0's run dir).
_RANK_VARS = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
_held: dict[Path, FileLock] = {}


class RunDirInUseError(ProdmatchError):
    """Another live process holds the run dir."""


def _secondary_rank() -> bool:
    """Whether this process is a rank > 0 of a distributed run (it writes into rank 0's run dir, by design)."""
    return any(os.environ.get(var, "0") not in ("", "0") for var in _RANK_VARS)


def hold_run_dir(run_dir: str | Path) -> None:
    """Hold ``<run_dir>/.run.lock`` until :func:`release_run_dir` or the end of the process (the lock dies with
    it, so a crashed run never blocks its dir). :class:`RunDirInUseError` when another live process holds it.

    Once held, the temporary files that writers killed mid-write on this host left in the dir are removed.
    """
    run_dir = Path(run_dir).expanduser().resolve()
    if run_dir in _held or _secondary_rank():
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run_dir / RUN_LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunDirInUseError(
            f"{run_dir} is in use by another live process (it holds {RUN_LOCK}); wait for that run to finish, or "
            "give this one its own dir (leave hydra.run.dir at its default, or set another)"
        ) from None
    _held[run_dir] = lock
    if removed := remove_orphans(run_dir, recursive=True):
        log.info("removed %d temporary files of killed writers in %s", removed, run_dir)


def release_run_dir(run_dir: str | Path) -> None:
    """Let go of a run dir held by :func:`hold_run_dir` (nothing when this process does not hold it)."""
    lock = _held.pop(Path(run_dir).expanduser().resolve(), None)
    if lock is not None:
        lock.release()
