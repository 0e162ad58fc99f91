"""The CSV logger: every logged metric as a row of ``<save_dir>/<name>/<version>/metrics.csv``, continued (never
deleted) when a resumed run finds the file, and the hyper-parameters in ``hparams.yaml`` beside it.

It imports nothing of Lightning: an evaluation that logs to CSV never pays for importing it. Training hands it
to Lightning's Trainer wrapped by :func:`prodmatch.tracking.lightning.for_trainer`. The file has the layout of
Lightning's CSVLogger (a ``step`` column, columns sorted by name, the header rewritten when a new metric
appears), so anything that read that file reads this one.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from prodmatch.utils import atomic

__all__ = ["AppendingCSVLogger"]

log = logging.getLogger("prodmatch")

METRICS_FILE = "metrics.csv"
HPARAMS_FILE = "hparams.yaml"


class AppendingCSVLogger:
    """Metrics as CSV rows (appended across a resume; a new column rewrites the file with the wider header)."""

    def __init__(self, save_dir: str | Path, name: str = "csv", version: str | int = "") -> None:
        self._save_dir = str(save_dir)
        self._name = name or ""
        self._version = version
        self._rows: list[dict[str, Any]] = []
        self._keys: list[str] | None = None  # the file's header, read on the first save
        self._hparams: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str | int:
        return self._version

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def root_dir(self) -> str:
        return str(Path(self._save_dir) / self._name)

    @property
    def log_dir(self) -> str:
        version = self._version if isinstance(self._version, str) else f"version_{self._version}"
        return str(Path(self.root_dir) / version)

    @property
    def metrics_file(self) -> Path:
        return Path(self.log_dir) / METRICS_FILE

    def log_hyperparams(self, params: Mapping[str, Any] | None = None, *args: Any, **kwargs: Any) -> None:
        """Merge ``params`` into ``hparams.yaml`` (values YAML cannot hold are written as their ``str``)."""
        if params is None:
            return
        params = params if isinstance(params, Mapping) else vars(params)  # an argparse Namespace
        self._hparams.update({str(k): _yaml_value(v) for k, v in params.items()})
        text = yaml.safe_dump(self._hparams, sort_keys=False, allow_unicode=True)
        atomic.write_text(Path(self.log_dir) / HPARAMS_FILE, text)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Queue one row (written by :meth:`save`); ``step`` defaults to the number of rows queued so far."""
        row = {k: _scalar(v) for k, v in metrics.items()}
        row["step"] = len(self._rows) if step is None else step
        self._rows.append(row)

    def save(self) -> None:
        """Write the queued rows: appended, or the whole file rewritten (atomically) when a column is new."""
        if not self._rows:
            return
        path = self.metrics_file
        if self._keys is None:
            self._keys = _header(path)
        new = set().union(*self._rows) - set(self._keys)
        if new or not path.is_file():
            self._keys = sorted({*self._keys, *new})
            old = _read_rows(path)
            with atomic.atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=self._keys)
                writer.writeheader()
                writer.writerows([*old, *self._rows])
        else:
            with path.open("a", newline="", encoding="utf-8") as fh:
                csv.DictWriter(fh, fieldnames=self._keys).writerows(self._rows)
        self._rows = []

    def finalize(self, status: str = "success") -> None:
        """Write what is still queued (the end of a run, whatever its status)."""
        self.save()


def _header(path: Path) -> list[str]:
    """The columns of an existing metrics file (a resumed run continues it), or none."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        header = fh.readline().strip()
    return header.split(",") if header else []


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _scalar(value: Any) -> Any:
    """A Python number for a 0-d tensor or numpy value (``.item()``), anything else as it is."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _yaml_value(value: Any) -> Any:
    """``value`` when YAML can write it, else its ``str`` (an object in a model's hyper-parameters)."""
    if hasattr(value, "_metadata") and hasattr(value, "_content"):  # an OmegaConf container
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value, resolve=True)
    try:
        yaml.safe_dump(value)
    except yaml.YAMLError:
        return str(value)
    return value
