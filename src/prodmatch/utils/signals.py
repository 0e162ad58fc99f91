"""SIGTERM / SIGINT: stop training at the next batch boundary (last.ckpt saved), elsewhere stop at once.

Lightning only turns SIGTERM into a stop when no other handler is installed, and then exits with status 0;
a Ctrl+C may land inside an optimizer step. Here both signals set Lightning's own stop flag while a trainer's fit
loop runs (it raises at the next batch boundary, where the checkpoint is consistent), and raise
:class:`Interrupted` anywhere else, so every interrupted job exits non-zero and is recorded as such. "Anywhere
else" includes the parts of ``fit`` outside its loop (the before-fit and fit-end evaluations, a checkpoint
restore): Lightning clears its flag as the loop starts and checks it nowhere after the loop, so a signal there
would be lost. The loop's start and end are marked by :func:`loop_started` / :func:`loop_ended` (the
``InterruptCheckpoint`` callback calls them).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_fitting: list[Any] = []  # the trainer currently inside fit(), if any
_looping: list[Any] = []  # the trainers whose fit loop runs (between on_train_start and on_train_end)


class Interrupted(SystemExit):
    """The job was stopped by a signal; the exit status is 128 + the signal number, as a shell reports it."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


def _handler(signum: int, frame: FrameType | None) -> None:
    trainer = _fitting[-1] if _fitting else None
    connector = getattr(trainer, "_signal_connector", None)
    # While the fit loop runs, the first signal asks Lightning to stop at the next batch boundary (its own SIGTERM
    # handler may already have set the flag before calling this one); the same signal again stops at once.
    if connector is not None and trainer in _looping and signum not in stopping_signal:
        connector.received_sigterm = True  # Lightning raises SIGTERMException at the next batch boundary
        stopping_signal.append(signum)
        return
    raise Interrupted(signum)


stopping_signal: list[int] = []  # signals that asked a fitting trainer to stop


@contextmanager
def handle_signals() -> Iterator[None]:
    """Install the handlers for the block (main thread only) and restore the previous ones after."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for s in previous:
            signal.signal(s, _handler)
    except ValueError:  # not the main thread (e.g. some launchers): leave signals alone
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def fitting(trainer: Any) -> Iterator[None]:
    """Mark ``trainer`` as fitting, so a signal asks it to stop cleanly instead of raising mid-step."""
    _fitting.append(trainer)
    try:
        yield
    finally:
        _fitting.remove(trainer)
        loop_ended(trainer)


def loop_started(trainer: Any) -> None:
    """``trainer``'s fit loop runs: a signal now stops it at the next batch boundary."""
    _looping.append(trainer)


def loop_ended(trainer: Any) -> None:
    """``trainer``'s fit loop is over: a signal now stops the job at once."""
    while trainer in _looping:
        _looping.remove(trainer)
