"""Embedding through Lightning's own predict loop, on the devices and nodes of any Lightning trainer.

:func:`embed_with_trainer` runs ``trainer.predict`` with :class:`EmbedModule` and :class:`ShardWriter`. In a
distributed run Lightning gives the predict DataLoader its ``UnrepeatedDistributedSampler``: rank r gets rows
r, r+W, r+2W, ... and nothing is padded or repeated. Each rank writes its rows with their input positions into
a memory-mapped shard; at the end of the loop rank 0 merges the shards into one ``embeddings.npy`` in input
order (see :mod:`prodmatch.distributed.shards`), which every process then opens memory-mapped.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from lightning_fabric.utilities.rank_zero import rank_zero_only
from pytorch_lightning.callbacks import BasePredictionWriter

from prodmatch.distributed.batches import BatchEmbedder
from prodmatch.distributed.shards import Shard, load_merged, merge_on_rank_zero
from prodmatch.errors import ConfigError

__all__ = ["EmbedModule", "ShardWriter", "embed_with_trainer", "is_global_zero"]

TrainerSpec = Callable[..., pl.Trainer] | Mapping[str, Any]


class EmbedModule(pl.LightningModule):
    """``predict_step``: a batch of (input positions, inputs) -> (positions, L2-normalised rows, statuses)."""

    def __init__(self, encoder: Any) -> None:
        super().__init__()
        self.embedder = BatchEmbedder(encoder)
        self.net = self.embedder.network  # a registered submodule: Lightning puts it on this rank's device

    def predict_step(self, batch: Any, batch_idx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.embedder(batch)


class ShardWriter(BasePredictionWriter):
    """Writes each rank's predicted rows into its shard in ``folder``; rank 0 merges them when the loop ends."""

    def __init__(self, folder: str | Path, n: int, dim: int) -> None:
        super().__init__(write_interval="batch")
        self.folder = Path(folder)
        self.n = n
        self.dim = dim
        self.shard: Shard | None = None

    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.shard = Shard(self.folder, trainer.global_rank, self.n, trainer.world_size, self.dim)

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        # The positions come with the batch itself: they hold whatever sampler Lightning chose.
        self.shard.write(*prediction)

    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_predict_epoch_end(trainer, pl_module)
        self.shard.close()
        merge_on_rank_zero(
            self.folder, self.n, self.dim, trainer.global_rank, trainer.world_size, trainer.strategy
        )


def _trainer(spec: TrainerSpec, writer: ShardWriter) -> pl.Trainer:
    """A trainer from a factory (``pl.Trainer``, a partial) or Trainer keyword arguments, with the writer."""
    factory = functools.partial(pl.Trainer, **spec) if isinstance(spec, Mapping) else spec
    return factory(
        callbacks=[writer],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        use_distributed_sampler=True,  # the row split is Lightning's sampler's
    )


def embed_with_trainer(
    encoder: Any, inputs: Sequence[Any], out_dir: str | Path, trainer: TrainerSpec = pl.Trainer
) -> np.ndarray:
    """float32 [N, dim] rows of ``inputs`` (image paths or texts) in input order, embedded by ``encoder`` through
    Lightning's predict loop on ``trainer``'s devices (and nodes), memory-mapped read-only from
    ``out_dir/embeddings.npy``; NaN rows are images that could not be read (``out_dir/statuses.npy`` says why).

    ``trainer``: a Trainer factory (``pl.Trainer``, ``functools.partial(pl.Trainer, strategy="ddp", ...)``) or
    its keyword arguments. ``out_dir`` must be one folder for all processes (shared between nodes). A fitted
    encoder (TF-IDF, the local text model) must be fitted first, in every process.
    """
    inputs = list(inputs)
    if not inputs:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    writer = ShardWriter(out_dir, len(inputs), encoder.dim)
    runner = _trainer(trainer, writer)
    if len(inputs) < runner.world_size:
        raise ConfigError(
            f"{len(inputs)} inputs cannot be split over {runner.world_size} processes (each needs a row); "
            "use fewer devices or nodes"
        )
    module = EmbedModule(encoder)
    runner.predict(module, dataloaders=module.embedder.loader(inputs), return_predictions=False)
    return load_merged(out_dir)[0]


def is_global_zero() -> bool:
    """Whether this is the run's rank-0 process (Lightning's rank: set from the launch environment, then by the
    strategy)."""
    return getattr(rank_zero_only, "rank", 0) == 0
