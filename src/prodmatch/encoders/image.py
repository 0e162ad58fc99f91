"""The configured image encoder: a ResNet18 backbone (:mod:`prodmatch.backbones.resnet`, the study's 512-d pooled
feature) embedded by an :class:`~prodmatch.encoders.image_embedder.ImageBatchEmbedder`.

The backbone is built (and its weights loaded) at the first ``encode``, so an embedding-cache hit never pays for
it; its cache key is the backbone's identity (weights, random-init seed) and the crop size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prodmatch.backbones.resnet import FEATURE_DIM, build_resnet18, resnet18_identity, resnet18_normalisation
from prodmatch.encoders.base import IMAGE_MODALITY, EncodeResult
from prodmatch.encoders.device import resolve_device
from prodmatch.encoders.image_embedder import ImageBatchEmbedder, check_batching

__all__ = ["ImageEncoder"]


class ImageEncoder:
    """ResNet18 image embeddings (``weights``: a torchvision name or a local file; ``pretrained=false``: random
    init seeded by ``seed``) on ``device``, batched through DataLoader workers and L2-normalised.
    ``pixel_cache``: a folder for pixel stores (decode once, read the crops back on later passes); None decodes
    every pass."""

    modality = IMAGE_MODALITY
    needs_fit = False
    dim = FEATURE_DIM

    def __init__(
        self,
        pretrained: bool = True,
        weights: str = "IMAGENET1K_V1",
        image_size: int = 224,
        batch_size: int = 64,
        num_workers: int = 2,
        device: str = "auto",
        seed: int = 0,
        progress: bool = True,
        pixel_cache: str | None = None,
    ) -> None:
        check_batching(batch_size, num_workers)
        self.pretrained = pretrained
        self.weights = str(weights)
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = device
        self.seed = seed
        self.progress = progress
        self.pixel_cache = pixel_cache
        self._embedder: ImageBatchEmbedder | None = None

    @property
    def embedder(self) -> ImageBatchEmbedder:
        """The batch embedder over the backbone, which is built (its weights loaded) on first use, in eval mode."""
        if self._embedder is None:
            # Seeded in a forked RNG: random init is reproducible without disturbing the caller's stream.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                net = build_resnet18(self.pretrained, self.weights)
            mean, std = resnet18_normalisation(self.pretrained, self.weights)
            self._embedder = ImageBatchEmbedder(
                net.to(resolve_device(self.device)).eval(),
                FEATURE_DIM,
                self.image_size,
                self.batch_size,
                self.num_workers,
                mean,
                std,
                self.pixel_cache,
                self.progress,
            )
        return self._embedder

    @property
    def network(self) -> nn.Module:
        return self.embedder.net

    def fit(self, texts: Sequence[str]) -> ImageEncoder:
        """Nothing to learn from a corpus."""
        return self

    def cache_key(self) -> str | None:
        identity = resnet18_identity(self.pretrained, self.weights, self.seed)
        return None if identity is None else f"{identity}|image_size={self.image_size}"

    def encode(self, inputs: Sequence[str | Path], out: np.ndarray | None = None) -> EncodeResult:
        """float32 [N, 512] rows, L2-normalised, in input order; NaN rows for images that cannot be read.

        ``out``: a writable float32 [N, 512] array (e.g. a memory-mapped file) to fill instead of a new one.
        """
        return self.embedder.encode(inputs, out)
