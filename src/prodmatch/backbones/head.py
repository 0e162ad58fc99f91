"""The embedding net every backbone is wrapped in: a backbone's pooled features, then a linear projection."""

from __future__ import annotations

import torch
from torch import nn

from prodmatch.errors import ConfigError


class EmbeddingNet(nn.Module):
    """``backbone`` (images -> ``[B, feature_dim]``) followed by a linear projection to ``embedding_size``.

    ``embedding_size=null`` keeps the backbone's features (no projection). :attr:`embedding_size` is what the
    training modules and the retrieval encoder read; the state dict holds ``backbone.*`` and ``projection.*``.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, embedding_size: int | None = None) -> None:
        super().__init__()
        if embedding_size is not None and (isinstance(embedding_size, bool) or int(embedding_size) < 1):
            raise ConfigError(
                f"model.net.embedding_size={embedding_size} must be >= 1, or null for the backbone's "
                f"{feature_dim}-d features"
            )
        self.backbone = backbone
        self.feature_dim = int(feature_dim)
        self.embedding_size = int(embedding_size or feature_dim)
        self.projection: nn.Module = (
            nn.Linear(self.feature_dim, self.embedding_size) if embedding_size else nn.Identity()
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(self.backbone(images))
