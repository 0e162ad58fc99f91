"""Seed every epoch from (seed, epoch), so a run resumed at an epoch boundary repeats what it would have done."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl


class EpochSeed(pl.Callback):
    """Re-seed Python, NumPy and torch at each training epoch's start from ``(seed, epoch)``.

    Augmentations drawn in the main process (``num_workers=0``) and any other random draw during an epoch then
    depend on the epoch alone, not on how many draws came before it in this process (a resumed run starts with
    a fresh process). DataLoader workers are seeded by the datamodule's per-epoch generator already.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch_seed = int(np.random.default_rng((self.seed, trainer.current_epoch)).integers(2**31 - 1))
        pl.seed_everything(epoch_seed + trainer.global_rank, workers=True, verbose=False)
