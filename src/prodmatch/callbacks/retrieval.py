"""RetrievalCallback: the ANNOY retrieval evaluation of the module's own encoder, before and after fit."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from prodmatch.data.catalog import Catalog
from prodmatch.encoders.base import EmbeddingCache, Encoder
from prodmatch.encoders.registry import EncoderRegistry
from prodmatch.retrieval.pipeline import RetrievalPipeline, retrieval_metrics, write_artifacts
from prodmatch.tracking import log_examples, log_metrics

log = logging.getLogger("prodmatch.callbacks")


class ShardedEncoder:
    """Splits encoding across DDP ranks and all-gathers the vectors back into dataset order.

    Rank r embeds rows r, r+W, r+2W, ... ; shards are padded to one length for the gather and the padding
    is cut after interleaving, so every row appears exactly once (no duplicates from sampler padding).
    """

    def __init__(self, encoder: Encoder, module: pl.LightningModule) -> None:
        self.encoder = encoder
        self.module = module

    def prepare(self, catalogs: Sequence[Catalog], view: str) -> None:
        prepare = getattr(self.encoder, "prepare", None)
        if prepare is not None:
            prepare(catalogs, view)

    def encode(self, catalog: Catalog, view: str) -> np.ndarray:
        world, rank = self.module.trainer.world_size, self.module.trainer.global_rank
        if world == 1:
            return self.encoder.encode(catalog, view)
        n = len(catalog)
        per_rank = math.ceil(n / world)
        shard = self.encoder.encode(catalog.subset(np.arange(rank, n, world)), view)
        padded = np.zeros((per_rank, shard.shape[1]), dtype=np.float32)
        padded[: len(shard)] = shard
        gathered = self.module.all_gather(torch.from_numpy(padded).to(self.module.device))  # [W, per, D]
        # gathered[r, j] is catalog row j*W + r: interleave ranks, then drop the padding (rows >= n).
        out = gathered.permute(1, 0, 2).reshape(per_rank * world, -1)[:n]
        return out.cpu().numpy().astype(np.float32)


class RetrievalCallback(pl.Callback):
    """Runs the retrieval pipeline with the module's encoder and logs Acc@10 and friends to every logger.

    Before fit (keys prefixed `before_fit/`), optionally every N validation epochs (logged against the step),
    and at fit end (writes metrics.json with both sets of keys, and matches.csv, into the run dir).
    """

    def __init__(
        self,
        *,
        pipeline: RetrievalPipeline,
        queries: Catalog,
        database: Catalog,
        encoders: EncoderRegistry | None = None,
        output_dir: str | Path,
        before_fit: bool = True,
        every_n_epochs: int = 0,
        log_examples: int = 8,
        cache: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.queries = queries
        self.database = database
        self.encoders = encoders if encoders is not None else EncoderRegistry({})
        self.output_dir = Path(output_dir)
        self.before_fit = before_fit
        self.every_n_epochs = int(every_n_epochs)
        self.log_examples = int(log_examples)
        self.cache_dir = Path(cache_dir) if cache and cache_dir else None
        self.metrics: dict[str, float] = {}

    def evaluate(self, trainer: pl.Trainer, module: pl.LightningModule, prefix: str = "retrieval/"):
        """One retrieval evaluation with the module's current weights; returns (result, metrics) on every rank."""
        encoders = self.encoders.with_extra(model=module.encoder)
        if trainer.world_size > 1:
            names = self.pipeline.encoder_names
            encoders = EncoderRegistry({}, {name: ShardedEncoder(encoders[name], module) for name in names})
        # The cache is skipped under DDP: a hit on one rank and a miss on another would desynchronise the gather.
        cache = EmbeddingCache(self.cache_dir) if self.cache_dir and trainer.world_size == 1 else None
        was_training = module.training
        module.eval()
        try:
            result = self.pipeline.run(self.queries, self.database, encoders, cache)
        finally:
            module.train(was_training)
        return result, retrieval_metrics(result, prefix=prefix)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.before_fit:
            return
        _, metrics = self.evaluate(trainer, pl_module, prefix="before_fit/retrieval/")
        # Contract keys: `before_fit/` + the final key (`before_fit/retrieval/acc@10`).
        self.metrics.update(metrics)
        if trainer.is_global_zero:
            log_metrics(trainer.loggers, metrics, step=trainer.global_step)
            log.info("before fit: Acc@10 = %.4f", metrics["before_fit/retrieval/acc@10"])

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.every_n_epochs <= 0 or trainer.sanity_checking:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs != 0:
            return
        _, metrics = self.evaluate(trainer, pl_module, prefix="epoch/retrieval/")
        if trainer.is_global_zero:
            log_metrics(trainer.loggers, metrics, step=trainer.global_step)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        result, metrics = self.evaluate(trainer, pl_module)
        self.metrics.update(metrics)
        if not trainer.is_global_zero:
            return
        log_metrics(trainer.loggers, metrics, step=trainer.global_step)
        log_examples(trainer.loggers, result, self.log_examples)
        write_artifacts(result, self.metrics, self.output_dir)
        log.info("after fit: Acc@10 = %.4f", metrics["retrieval/acc@10"])
