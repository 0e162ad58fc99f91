"""Encoding split across DDP ranks and all-gathered back into dataset order."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytorch_lightning as pl
import torch


class ShardedEncoder:
    """Rank r embeds rows r, r+W, r+2W, ...; shards are padded to one length for the gather and the padding is
    cut after interleaving, so every row appears exactly once (no duplicates from sampler padding)."""

    def __init__(self, encoder: object, module: pl.LightningModule) -> None:
        self.encoder = encoder
        self.module = module

    def __getattr__(
        self, name: str
    ) -> object:  # dim, modality, needs_fit, fit, cache_key: the inner encoder's
        return getattr(self.encoder, name)

    def encode(self, inputs: Sequence[object]) -> np.ndarray:
        world, rank = self.module.trainer.world_size, self.module.trainer.global_rank
        if world == 1:
            return self.encoder.encode(inputs)
        n = len(inputs)
        per_rank = math.ceil(n / world)
        shard = self.encoder.encode(list(inputs)[rank::world])
        padded = np.zeros((per_rank, shard.shape[1]), dtype=np.float32)
        padded[: len(shard)] = shard
        gathered = self.module.all_gather(torch.from_numpy(padded).to(self.module.device))  # [W, per, D]
        # gathered[r, j] is input j*W + r: interleave ranks, then drop the padding (rows >= n).
        out = gathered.permute(1, 0, 2).reshape(per_rank * world, -1)[:n]
        return out.cpu().numpy().astype(np.float32)
