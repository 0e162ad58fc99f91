"""Save `last.ckpt` when training is stopped by a signal, so `ckpt_path=.../last.ckpt` resumes it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl

log = logging.getLogger("prodmatch.callbacks")


class InterruptCheckpoint(pl.Callback):
    """On SIGTERM / SIGINT (Lightning stops at a batch boundary), write ``<dirpath>/last.ckpt``."""

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if not isinstance(exception, (SIGTERMException, KeyboardInterrupt)):
            return
        path = self.dirpath / "last.ckpt"
        trainer.save_checkpoint(path)
        log.warning("training stopped by a signal at step %d; saved %s", trainer.global_step, path)
