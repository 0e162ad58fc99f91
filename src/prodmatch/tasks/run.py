"""What a task leaves behind: its metrics, its run dir and the retrieval result saved there."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prodmatch.retrieval.result import RetrievalResult


@dataclass
class Run:
    """One finished (or failed, or reused) task: ``metrics`` as in ``metrics.json`` (empty when the job failed
    in a sweep), ``run_dir``, and ``result``, the saved :class:`RetrievalResult` (read from the run dir on
    first use when the task did not hand it over, e.g. a reused run)."""

    run_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    _result: RetrievalResult | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)

    @property
    def result(self) -> RetrievalResult:
        if self._result is None:
            self._result = RetrievalResult.load(self.run_dir)
        return self._result
