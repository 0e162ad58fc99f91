"""Embedding networks for the metric-learning modules: an image batch in, one embedding per image out."""

from __future__ import annotations

import torch
from torch import nn

from prodmatch.backbones.resnet import FEATURE_DIM, build_resnet18
from prodmatch.errors import ConfigError


class ImageEmbeddingNet(nn.Module):
    """ResNet18 (Identity head, 512-d) followed by a linear projection to ``embedding_size``.

    ``embedding_size=null`` keeps the backbone's 512-d output. ``pretrained`` / ``weights`` are
    :func:`~prodmatch.backbones.resnet.build_resnet18`'s; random init draws from the global torch RNG.
    """

    def __init__(
        self, pretrained: bool = True, weights: str = "IMAGENET1K_V1", embedding_size: int | None = 128
    ) -> None:
        super().__init__()
        if embedding_size is not None and embedding_size < 1:
            raise ConfigError(
                f"model.net.embedding_size={embedding_size} must be >= 1, or null for the 512-d backbone"
            )
        self.backbone = build_resnet18(pretrained=pretrained, weights=weights)
        self.embedding_size = int(embedding_size or FEATURE_DIM)
        self.projection: nn.Module = (
            nn.Linear(FEATURE_DIM, self.embedding_size) if embedding_size else nn.Identity()
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(self.backbone(images))
