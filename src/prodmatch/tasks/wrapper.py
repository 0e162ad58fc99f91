"""The one wrapper around every task: reuse, expected errors as one line, signals, W&B always finished.

Outcomes of a job, each recorded in ``<run dir>/job_status.json`` (``running`` while it runs, so a job killed
outright is not mistaken for a finished one):
- ok: the task's :class:`~prodmatch.tasks.run.Run` is returned (and ``done.json`` marks its metrics reusable;
  a reused run comes back with the earlier metrics);
- failed (an expected, user-fixable error): one ``error: ...`` line; a single run exits 1, a sweep job returns
  a run without metrics (its objective is NaN) so the sweep (and an Optuna study) goes on, and the sweep ends with a summary and exit 1;
- interrupted (SIGTERM / SIGINT): one line, training has saved ``last.ckpt``, exit 128 + signal;
- no room on the disk (or quota) for an artifact (metrics, matches, result, checkpoint): one ``error: ...`` line
  naming the file, recorded as failed, handled like any expected error;
- anything else is a bug: recorded as failed, W&B marked failed, the traceback is shown.

Input files are identified as ``data.identity`` says (stat or content) for the whole job: the reuse check, the
embedding cache and the pixel store.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from prodmatch.errors import ProdmatchError, one_line
from prodmatch.layout import CHECKPOINTS_DIR, LAST_CHECKPOINT_FILE, STATUS_FILE
from prodmatch.tasks import resume
from prodmatch.tasks.run import Run
from prodmatch.tracking import finish_wandb
from prodmatch.utils import atomic
from prodmatch.utils.hashing import check_identity, file_identity
from prodmatch.utils.signals import Interrupted, handle_signals, stopping_signal

log = logging.getLogger("prodmatch")

Task = Callable[[DictConfig], Run]


def user_error(err: BaseException) -> ProdmatchError | None:
    """The ProdmatchError behind an exception, if any (Hydra and DataLoader workers wrap errors)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ProdmatchError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def in_multirun() -> bool:
    """Whether this job is one of a sweep (Hydra's multirun mode)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


class DiskFullError(ProdmatchError):
    """No room on the disk (or quota) for one of the run's files."""


def write_status(cfg: DictConfig, status: str, error: str | None = None, wall_s: float | None = None) -> None:
    """Record this job's outcome (and its wall time) where the sweep summary, the reports and a person find it.

    On a full disk there is no room for a temporary file: the record is then overwritten in place, in the blocks of
    the ``running`` record the job started with (never truncated first, so a write that fails leaves that record).
    """
    data = {"status": status, "experiment": str(cfg.get("experiment_name")), "error": error}
    if wall_s is not None:
        data["wall_s"] = round(wall_s, 1)
    path = Path(cfg.paths.output_dir) / STATUS_FILE
    try:
        atomic.write_json(path, data)
    except OSError as err:
        if not atomic.is_disk_full(err) or not path.is_file():
            raise
        text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        with path.open("r+b") as fh:
            fh.write(text.encode("utf-8"))
            fh.truncate()


def disk_full_error(cfg: DictConfig, exc: BaseException) -> DiskFullError | None:
    """The one-line error of a write that found no room (None when ``exc`` is something else)."""
    if not atomic.is_disk_full(exc):
        return None
    seen: BaseException | None = exc
    filename = None
    while seen is not None and filename is None:
        filename = getattr(seen, "filename", None) if isinstance(seen, OSError) else None
        seen = seen.__cause__ or seen.__context__
    where = f" writing {filename}" if filename else f" writing into {cfg.paths.output_dir}"
    return DiskFullError(
        f"{cfg.get('experiment_name')}: no space left on the disk (or quota){where}; free space there, or point "
        "hydra.run.dir (paths.log_dir) or paths.cache_dir at a disk with room, and run again"
    )


def _recorded_wall_s(cfg: DictConfig) -> float | None:
    """The wall time an earlier job in this run dir recorded, if any."""
    try:
        value = json.loads((Path(cfg.paths.output_dir) / STATUS_FILE).read_text()).get("wall_s")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _interrupted(exc: BaseException) -> Interrupted | None:
    """The signal stop behind ``exc``: ours, Lightning's SIGTERMException, or Lightning's Ctrl+C exit."""
    if isinstance(exc, Interrupted):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted(signal.SIGINT)
    if isinstance(exc, SystemExit) and (stopping_signal or type(exc).__name__ == "SIGTERMException"):
        return Interrupted(stopping_signal[-1] if stopping_signal else signal.SIGTERM)
    return None


def task_wrapper(task: Task) -> Task:
    """Wrap a task function (see the module docstring for what it guarantees)."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> Run:
        try:
            identity = check_identity(str(cfg.data.get("identity") or "stat")) if "data" in cfg else "stat"
        except ProdmatchError as exc:
            return _failure(cfg, exc)
        with file_identity(identity):
            return _run(task, cfg)

    return wrapped


def _run(task: Task, cfg: DictConfig) -> Run:
    """Reuse, or run ``task`` and record its outcome (see the module docstring)."""
    if cfg.get("resume"):
        earlier = resume.reusable_metrics(cfg)
        if earlier is not None:
            try:  # the reused run's wall time, not this check's
                write_status(cfg, "ok", wall_s=_recorded_wall_s(cfg))
            except OSError as exc:
                return _failure(cfg, exc)
            return Run(cfg.paths.output_dir, earlier)
    # taken before the task runs: a task settles config values in place (train.py's datamodule.modality=auto),
    # and a resumed fit rewrites the checkpoint it started from
    started = resume.start_fingerprints(cfg)
    stopping_signal.clear()
    failed = True
    start = time.perf_counter()
    try:
        write_status(cfg, "running")
        resume.record_initialisation(cfg)
        with handle_signals():
            run = task(cfg)
        failed = False
    except BaseException as exc:  # noqa: BLE001 - every outcome is recorded, then re-raised or converted
        return _failure(cfg, exc)
    finally:
        finish_wandb(failed)
    try:
        resume.mark_done(cfg, started)
        write_status(cfg, "ok", wall_s=time.perf_counter() - start)
    except OSError as exc:
        return _failure(cfg, exc)
    return run


def _record_failure(cfg: DictConfig, status: str, error: str) -> None:
    """:func:`write_status` for a job that failed: a disk too full to hold even that is said in the log, never
    raised over the job's own error."""
    try:
        write_status(cfg, status, error)
    except OSError as err:
        if not atomic.is_disk_full(err):
            raise
        log.warning(
            "%s not written: no space left on the disk (or quota)", Path(cfg.paths.output_dir) / STATUS_FILE
        )


def _failure(cfg: DictConfig, exc: BaseException) -> Run:
    """Record a failed or interrupted job; return a run without metrics in a sweep or leave with the right exit."""
    stop = _interrupted(exc)
    if stop is not None:
        ckpt = Path(cfg.paths.output_dir) / CHECKPOINTS_DIR / LAST_CHECKPOINT_FILE
        where = f"; resume with ckpt_path={ckpt}" if ckpt.is_file() else ""
        _record_failure(cfg, "interrupted", f"stopped by {stop.signal_name}")
        print(f"error: {cfg.experiment_name}: stopped by {stop.signal_name}{where}", file=sys.stderr)
        raise SystemExit(stop.code) from None
    err = user_error(exc) or disk_full_error(cfg, exc)
    if err is None:
        _record_failure(cfg, "failed", f"{type(exc).__name__}: {one_line(exc)}")
        raise exc
    line = one_line(err, limit=2000)
    _record_failure(cfg, "failed", line)
    print(f"error: {line}", file=sys.stderr)  # the one line the user needs; no traceback
    if in_multirun():
        log.error("%s: job failed; the sweep goes on", cfg.get("experiment_name"))
        return Run(cfg.paths.output_dir)
    raise SystemExit(1) from None
