"""The Hydra callback that holds a run's dir while it runs.

:class:`RunDirLock` is registered by `conf/hydra/default.yaml` (`hydra.callbacks.run_dir_lock`): a run (or sweep
job) holds its dir before Hydra writes anything there, so a second process given the same `hydra.run.dir` stops
with one line instead of overwriting the live run's `.hydra/` and files.
"""

from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from prodmatch.errors import ProdmatchError
from prodmatch.utils.locks import hold_run_dir, release_run_dir


class RunDirLock(Callback):
    """Hold the run dir (or each sweep job's dir) while it runs; another live process holding it ends this one
    with one ``error:`` line and exit 1, before anything is written there."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        # as run_job does next: the run dir's interpolations need it
        HydraConfig.instance().set_config(config)
        self._hold(str(config.hydra.run.dir))

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        release_run_dir(str(config.hydra.run.dir))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._hold(str(config.hydra.runtime.output_dir))  # a single run holds it already

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.types import RunMode

        if config.hydra.mode == RunMode.MULTIRUN:  # a single run lets go in on_run_end
            release_run_dir(str(config.hydra.runtime.output_dir))

    @staticmethod
    def _hold(run_dir: str) -> None:
        try:
            hold_run_dir(run_dir)
        except ProdmatchError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(1) from None
