"""Lightning's CSVLogger, continued rather than deleted when a resumed run finds its metrics.csv."""

from __future__ import annotations

import os
from typing import Any

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        # Lightning deletes an existing metrics.csv here; a resumed run appends to it instead.
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r") as fh:
                header = fh.readline().strip()
            self.metrics_keys = header.split(",") if header else []


class AppendingCSVLogger(CSVLogger):
    """CSVLogger whose metrics.csv survives a resume: new rows are appended (new columns rewrite the header)."""

    @property
    def experiment(self) -> Any:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
