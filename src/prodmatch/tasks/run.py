"""What a task leaves behind: its metrics, its run dir and the retrieval result saved there."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from prodmatch.layout import MATCHES_FILE
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

    def matches(self) -> pd.DataFrame:
        """The run's ``matches.csv``: one row per (query, rank) with the score and both cards' key columns."""
        # only empty cells are missing: a title such as "NA" stays text
        return pd.read_csv(self.run_dir / MATCHES_FILE, keep_default_na=False, na_values=[""])
