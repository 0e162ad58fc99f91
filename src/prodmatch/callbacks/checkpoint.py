"""The run's checkpoints folder: `last.ckpt` saved when training is stopped by a signal, so
`ckpt_path=.../last.ckpt` resumes it; an earlier attempt's checkpoints set aside when a fit starts over; every
checkpoint written atomically."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from prodmatch.layout import LAST_CHECKPOINT_FILE
from prodmatch.utils.atomic import atomic_path
from prodmatch.utils.signals import loop_ended, loop_started

log = logging.getLogger("prodmatch.callbacks")


class InterruptCheckpoint(pl.Callback):
    """On SIGTERM / SIGINT (Lightning stops at a batch boundary), write ``<dirpath>/last.ckpt``. It also marks the
    fit loop's start and end for :mod:`prodmatch.utils.signals`: a signal outside the loop stops the job at once."""

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loop_started(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loop_ended(trainer)

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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written like every other artifact of a run: serialised, written to a temporary file in the
    checkpoint's folder, flushed, then renamed over the old one (``trainer.plugins``).

    Lightning's own save may write through a temporary file on another disk and copy it over the old checkpoint,
    so a full disk can leave a torn ``last.ckpt``; here the old checkpoint stays whole, and a full disk is an
    ``OSError`` naming the file, which the task reports in one line. Remote paths (``s3://...``) keep Lightning's
    save.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with atomic_path(path) as tmp:
            tmp.write_bytes(buffer.getbuffer())
