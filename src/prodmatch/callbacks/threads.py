"""TorchThreads: the number of intra-op CPU threads a run's training and evaluation use.

PyTorch uses one thread per core by default. On a small machine whose cores the DataLoader workers (decoding,
augmenting) and other jobs share, fewer threads can be much faster: a thread that waits for a busy core stalls
every parallel region of every layer. Set at ``setup``, before the first evaluation and the first step.
"""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch

from prodmatch.errors import ConfigError

log = logging.getLogger("prodmatch.callbacks")


class TorchThreads(pl.Callback):
    """``torch.set_num_threads(threads)`` when the run is set up (null: leave PyTorch's default)."""

    def __init__(self, threads: int | None = None) -> None:
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"callbacks.torch_threads.threads={threads!r} must be an integer >= 1, or null")
        self.threads = threads

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.threads is not None and torch.get_num_threads() != self.threads:
            log.info("torch intra-op threads: %d (was %d)", self.threads, torch.get_num_threads())
            torch.set_num_threads(self.threads)
