"""The run's checkpoints folder: `last.ckpt` saved when training is stopped by a signal, so
`ckpt_path=.../last.ckpt` resumes it; an earlier attempt's checkpoints set aside when a fit starts over."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytorch_lightning as pl

from prodmatch.layout import LAST_CHECKPOINT_FILE

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
        path = self.dirpath / LAST_CHECKPOINT_FILE
        trainer.save_checkpoint(path)
        log.warning("training stopped by a signal at step %d; saved %s", trainer.global_step, path)


class EarlierAttemptAside(pl.Callback):
    """A fit that starts from scratch where an earlier attempt left checkpoints moves them to
    ``<dirpath>/earlier-<time>/`` first.

    That happens when an unfinished sweep job is run again in its own dir (``make reproduce`` after an interrupt).
    Left in place, Lightning would write this fit's checkpoints as ``last-v1.ckpt`` beside the earlier attempt's
    ``last.ckpt``, and ``ckpt_path=<run>/checkpoints/last.ckpt`` would load the earlier weights. A fit resumed
    from a checkpoint (``ckpt_path``) continues the attempt and keeps its folder as it is.
    """

    def __init__(self, dirpath: str | Path, ckpt_path: str | Path | None = None) -> None:
        self.dirpath = Path(dirpath)
        self.resumed = ckpt_path is not None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.resumed or not trainer.is_global_zero:
            return
        earlier = sorted(self.dirpath.glob("*.ckpt"))
        if not earlier:
            return
        aside = self.dirpath / f"earlier-{time.strftime('%Y%m%d-%H%M%S')}"
        aside.mkdir(parents=True, exist_ok=True)
        for path in earlier:
            path.rename(aside / path.name)
        log.warning(
            "%d checkpoint(s) of an earlier attempt in %s moved to %s/: this fit starts from scratch",
            len(earlier),
            self.dirpath,
            aside.name,
        )
