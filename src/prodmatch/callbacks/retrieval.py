"""RetrievalCallback: the retrieval evaluation of the module's own encoder, before fit, every N epochs, at fit end.

It runs the one evaluation stage (:mod:`prodmatch.retrieval.evaluation`): the pipeline with the module's live
encoder as `model`, then score and record. Its metrics come back to the task through :attr:`metrics`; the
before-fit figures live in the checkpoint, so a resumed run keeps them instead of recomputing them on the
checkpoint's weights.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from prodmatch.data.catalog import Catalog
from prodmatch.data.splits import ProductSplit
from prodmatch.distributed.encoders import ShardedEncoder
from prodmatch.encoders.cache import EmbeddingCache
from prodmatch.encoders.registry import EncoderRegistry
from prodmatch.layout import BEFORE_FIT, EPOCH, SHARDS_DIR, acc_key
from prodmatch.retrieval.evaluation import record, score
from prodmatch.retrieval.pipeline import RetrievalPipeline
from prodmatch.retrieval.result import RetrievalResult
from prodmatch.tracking import log_metrics
from prodmatch.utils import progress

log = logging.getLogger("prodmatch.callbacks")


class RetrievalCallback(pl.Callback):
    """Scores the module's encoder with the retrieval pipeline and records the result (see the module doc).

    The task builds it with the run's evaluation inputs: ``pipeline``, the ``queries`` and ``database``
    catalogs, the product ``split`` the datamodule trains on (the product protocol scores by it), the other
    ``encoders`` a channel may name, the embedding ``cache``, the ``pixel_cache`` folder of decoded eval crops
    (the live weights change between evaluations, the database's crops do not), the resolved ``run_config``
    (saved with the result) and ``extra_metrics`` recorded with the figures (e.g. mining's).
    """

    def __init__(
        self,
        *,
        pipeline: RetrievalPipeline,
        queries: Catalog,
        database: Catalog,
        output_dir: str | Path,
        split: ProductSplit | None = None,
        encoders: EncoderRegistry | None = None,
        cache: EmbeddingCache | None = None,
        pixel_cache: str | Path | None = None,
        before_fit: bool = True,
        every_n_epochs: int = 0,
        log_examples: int = 8,
        strict: bool = False,
        run_config: dict[str, Any] | None = None,
        extra_metrics: Mapping[str, float] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.queries = queries
        self.database = database
        self.split = split
        self.encoders = encoders if encoders is not None else EncoderRegistry({})
        self.output_dir = Path(output_dir)
        self.cache = cache
        self.pixel_cache = str(pixel_cache) if pixel_cache else None
        self.before_fit = before_fit
        self.every_n_epochs = int(every_n_epochs)
        self.log_examples = int(log_examples)
        self.strict = strict
        self.run_config = run_config
        self.metrics: dict[str, float] = dict(extra_metrics or {})  # before-fit and final metrics: the run's
        self.result: RetrievalResult | None = None  # the fit-end result, once recorded
        self._last_periodic: tuple[int, RetrievalResult | None] = (-1, None)  # (global step, result)

    def evaluate(
        self, trainer: pl.Trainer, module: pl.LightningModule, stage: str
    ) -> tuple[RetrievalResult, dict]:
        """One retrieval evaluation with the module's current weights; (result, metrics) on every rank.

        The module is in eval mode for the whole evaluation (its encoders never switch modes themselves).
        """
        shards = self.output_dir / SHARDS_DIR
        was_training = module.training
        module.eval()
        try:
            encoders = self.encoders.with_extra(**module.retrieval_encoders(self.pixel_cache))
            if trainer.world_size > 1:
                encoders = self._sharded(encoders, trainer, shards)
            # No cache under DDP: a hit on one rank and a miss on another would leave ranks waiting on each other.
            cache = self.cache if trainer.world_size == 1 else None
            label = {BEFORE_FIT: "before fit", EPOCH: f"epoch {trainer.current_epoch}"}.get(stage, "fit end")
            with progress.stage(label):  # the progress bars say which evaluation they belong to
                result = self.pipeline.run(
                    self.queries, self.database, encoders, cache, strict=self.strict, split=self.split
                )
        finally:
            module.train(was_training)
        if trainer.world_size > 1:
            trainer.strategy.barrier("prodmatch-retrieval-done")  # no rank still reads the merged files
            if trainer.is_global_zero:
                shutil.rmtree(shards, ignore_errors=True)
        result.config = self.run_config
        return result, score(result, stage)

    def _sharded(self, encoders: Mapping[str, Any], trainer: pl.Trainer, folder: Path) -> dict[str, Any]:
        """The pipeline's encoders, each rank embedding its share into shards on disk that rank 0 merges."""
        rank, world = trainer.global_rank, trainer.world_size
        return {
            name: ShardedEncoder(encoders[name], trainer.strategy, rank, world, folder / name)
            for name in self.pipeline.encoder_names
            if name in encoders
        }

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.before_fit:
            return
        if any(key.startswith(BEFORE_FIT) for key in self.metrics):
            log.info("before-fit figures restored from the checkpoint; not recomputed on its weights")
            return
        start = time.perf_counter()
        _, metrics = self.evaluate(trainer, pl_module, stage=BEFORE_FIT)
        self.metrics.update(metrics)
        if trainer.is_global_zero:
            log_metrics(trainer.loggers, metrics, step=trainer.global_step)
            key = acc_key(self.pipeline.k, stage=BEFORE_FIT)
            seconds = time.perf_counter() - start
            log.info("before fit: Acc@%d = %.4f (%.1f s)", self.pipeline.k, metrics[key], seconds)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.every_n_epochs <= 0 or trainer.sanity_checking:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs != 0:
            return
        result, metrics = self.evaluate(trainer, pl_module, stage=EPOCH)
        self._last_periodic = (trainer.global_step, result)
        if trainer.is_global_zero:
            log_metrics(trainer.loggers, metrics, step=trainer.global_step)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step, result = self._last_periodic
        if result is not None and step == trainer.global_step:
            # the last epoch's periodic evaluation saw these very weights: embedding the catalogs again
            # (minutes at catalog scale) would give the same result
            metrics = score(result)
        else:
            result, metrics = self.evaluate(trainer, pl_module, stage="")
        self._last_periodic = (-1, None)
        self.metrics.update(metrics)
        self.result = result
        if trainer.is_global_zero:
            record(
                result, self.metrics, self.output_dir, trainer.loggers, self.log_examples, trainer.global_step
            )
            log.info("after fit: Acc@%d = %.4f", self.pipeline.k, metrics[acc_key(self.pipeline.k)])

    def state_dict(self) -> dict[str, Any]:
        """The before-fit figures travel in the checkpoint (a resumed run keeps the original ones)."""
        return {"before_fit": {k: v for k, v in self.metrics.items() if k.startswith(BEFORE_FIT)}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.metrics.update(state_dict.get("before_fit", {}))
