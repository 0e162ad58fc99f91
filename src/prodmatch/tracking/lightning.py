"""The run's loggers as Lightning's Trainer takes them (imported by training only: it imports Lightning)."""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Iterable, Mapping
from typing import Any

from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only

from prodmatch.tracking.csv_logger import AppendingCSVLogger


class TrainerCSVLogger(Logger):
    """Lightning's view of an :class:`AppendingCSVLogger`: the same files, written on rank zero only."""

    def __init__(self, inner: AppendingCSVLogger) -> None:
        super().__init__()
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def version(self) -> str | int:
        return self.inner.version

    @property
    def save_dir(self) -> str:
        return self.inner.save_dir

    @property
    def root_dir(self) -> str:
        return self.inner.root_dir

    @property
    def log_dir(self) -> str:
        return self.inner.log_dir

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        self.inner.log_hyperparams(params)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.inner.log_metrics(metrics, step)

    @rank_zero_only
    def save(self) -> None:
        self.inner.save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.inner.finalize(status)


def for_trainer(loggers: Iterable[Any]) -> list[Any]:
    """``loggers`` as the Trainer takes them: CSV loggers wrapped, Lightning's own (W&B) as they are."""
    return [TrainerCSVLogger(lg) if isinstance(lg, AppendingCSVLogger) else lg for lg in loggers]
