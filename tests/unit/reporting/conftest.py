"""Run dirs for the reporting tests: the tiny catalog's retrieval results at every k the tests use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from prodmatch.retrieval.result import RetrievalResult
from tests.unit.reporting.saved_runs import KS, run_retrieval, save_run


@pytest.fixture(scope="session")
def tiny_results(tiny_catalogs: tuple[Any, Any]) -> dict[int, RetrievalResult]:
    """k -> a retrieval result on the tiny catalog, for every k the tests use."""
    queries, database = tiny_catalogs
    return {k: run_retrieval(queries, database, k) for k in KS}


@pytest.fixture
def make_run(tiny_results: dict[int, RetrievalResult]) -> Callable[..., Path]:
    """``make_run(run_dir, experiment, k=10, **save_run options)``: a finished run dir on the tiny catalog."""

    def _make(run_dir: Path, experiment: str, k: int = 10, **options: Any) -> Path:
        return save_run(run_dir, tiny_results[k], experiment, **options)

    return _make
