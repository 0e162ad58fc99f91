"""What a progress bar counts: the stages a run is in, set around the work by the code that knows them (the
training callback: "before fit"; the pipeline: "database"), read by the code that draws the bar."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_STAGES: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("prodmatch_progress", default=())


@contextlib.contextmanager
def stage(label: str) -> Iterator[None]:
    """Inside: progress bars name ``label`` (after the stages already set)."""
    token = _STAGES.set((*_STAGES.get(), label))
    try:
        yield
    finally:
        _STAGES.reset(token)


def describe(what: str) -> str:
    """A progress bar's label: ``what`` and the stages it is counting for, e.g. ``images (before fit, database)``."""
    stages = _STAGES.get()
    return f"{what} ({', '.join(stages)})" if stages else what
