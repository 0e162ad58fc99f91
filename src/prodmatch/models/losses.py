"""Siamese losses of the study, each declaring its label convention (see :func:`prodmatch.data.training.pairs.pair_labels`).

``forward(e1, e2, y)`` takes two embedding batches ``[B, D]`` and labels ``[B]`` already in the loss's own
convention; a module turns a pair's boolean ``same`` into ``y`` with ``pair_labels(same, loss.one_means)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prodmatch.data.training.pairs import OneMeans


class ContrastiveLoss(nn.Module):
    """``mean((1 - y) * d^2 + y * clamp(margin - d, 0)^2)``, d = Euclidean distance, y = 1 for DIFFERENT."""

    one_means: OneMeans = "different"

    def __init__(self, margin: float = 2.0) -> None:
        super().__init__()
        self.margin = float(margin)

    def forward(self, e1: torch.Tensor, e2: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # pairwise_distance adds a tiny eps, which keeps the gradient finite for identical embeddings.
        d = F.pairwise_distance(e1, e2)
        y = y.to(d.dtype)
        return torch.mean((1 - y) * d.pow(2) + y * torch.clamp(self.margin - d, min=0).pow(2))

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


class CosineSimilarityLoss(nn.Module):
    """``MSE(cos(e1, e2), y)`` with y = 1 for the SAME target and 0 for different ones."""

    one_means: OneMeans = "same"

    def forward(self, e1: torch.Tensor, e2: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cos = F.cosine_similarity(e1, e2, dim=1)
        return F.mse_loss(cos, y.to(cos.dtype))
