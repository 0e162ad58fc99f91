"""Pipeline encoders that embed through shards: Lightning's predict loop (evaluate.py ``embed_trainer=``) and a
rank's share inside fit (the retrieval callback under DDP).

Both wrap an encoder (kept as ``inner``), take its ``modality``, ``dim``, ``fit`` and ``cache_key``, and give
each ``encode`` call its own folder, ``<work_dir>/<call number>``: every process of a run makes the same calls in
the same order, so they all name the same folder. The result counts what the merged statuses hold (every rank's
rows, once).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.distributed.batches import BatchEmbedder, embed_share
from prodmatch.distributed.predict import TrainerSpec, embed_with_trainer
from prodmatch.distributed.shards import Collective, Shard, load_merged, merge_on_rank_zero, rank_rows
from prodmatch.encoders.base import EncodeResult, WrappedEncoder
from prodmatch.encoders.image_embedder import image_result

__all__ = ["PredictLoopEncoder", "ShardedEncoder"]


class _ShardFolderEncoder(WrappedEncoder):
    """What both wrappers share: delegation, one folder per call, the result from the merged statuses."""

    def __init__(self, inner: Any, work_dir: str | Path) -> None:
        super().__init__(inner)
        self.work_dir = Path(work_dir)
        self._calls = 0

    @property
    def needs_fit(self) -> bool:
        return bool(self.inner.needs_fit)

    def fit(self, texts: Sequence[str]) -> _ShardFolderEncoder:
        self.inner.fit(texts)
        return self

    def cache_key(self) -> str | None:
        return self.inner.cache_key()

    def encode(self, inputs: Sequence[Any]) -> EncodeResult:
        """float32 [N, dim] in input order, memory-mapped from the merged file (see the module doc)."""
        inputs = list(inputs)
        if not inputs:
            return EncodeResult(np.zeros((0, self.dim), dtype=np.float32))
        folder = self.work_dir / str(self._calls)
        self._calls += 1
        self._embed(inputs, folder)
        vectors, statuses = load_merged(folder)
        return image_result(vectors, [str(p) for p in inputs], statuses)  # texts: every status is "ok"

    def _embed(self, inputs: list[Any], folder: Path) -> None:
        raise NotImplementedError


class PredictLoopEncoder(_ShardFolderEncoder):
    """Each ``encode`` runs :func:`embed_with_trainer` with a new trainer from ``trainer`` (evaluate.py's
    ``embed_trainer``); the merged matrices stay in ``work_dir``."""

    def __init__(self, inner: Any, trainer: TrainerSpec, work_dir: str | Path) -> None:
        super().__init__(inner, work_dir)
        self.trainer = trainer

    def _embed(self, inputs: list[Any], folder: Path) -> None:
        embed_with_trainer(self.inner, inputs, folder, self.trainer)


class ShardedEncoder(_ShardFolderEncoder):
    """Inside fit under DDP (no predict loop there): rank r embeds rows r, r+W, ... (the split of Lightning's
    predict sampler) into its shard, rank 0 merges them and every rank reads the merged file.

    ``group``: the trainer's strategy (ranks, barrier, broadcast); the caller removes ``work_dir`` afterwards.
    """

    def __init__(self, inner: Any, group: Collective, rank: int, world: int, work_dir: str | Path) -> None:
        super().__init__(inner, work_dir)
        self.group = group
        self.rank = rank
        self.world = world

    def _embed(self, inputs: list[Any], folder: Path) -> None:
        n = len(inputs)
        shard = Shard(folder, self.rank, n, self.world, self.dim)
        embed_share(BatchEmbedder(self.inner), inputs, rank_rows(n, self.rank, self.world), shard)
        shard.close()
        merge_on_rank_zero(folder, n, self.dim, self.rank, self.world, self.group)
