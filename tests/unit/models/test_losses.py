"""The study's pair losses against direct computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from prodmatch.data.training.pairs import pair_labels
from prodmatch.models.losses import ContrastiveLoss, CosineSimilarityLoss


def _batch(n: int = 16, dim: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    e1, e2 = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)
    same = torch.rand(n, generator=g) < 0.5
    return e1, e2, same


def test_contrastive_matches_hand_formula() -> None:
    e1, e2, same = _batch()
    loss = ContrastiveLoss(margin=2.0)
    y = pair_labels(same, loss.one_means)  # 1 = different
    d = torch.sqrt(((e1 - e2) ** 2).sum(dim=1))
    expected = torch.mean((1 - y) * d**2 + y * torch.clamp(2.0 - d, min=0) ** 2)
    torch.testing.assert_close(loss(e1, e2, y), expected, rtol=1e-4, atol=1e-5)


def test_contrastive_terms() -> None:
    loss = ContrastiveLoss(margin=2.0)
    zero, three = torch.zeros(1, 4), torch.tensor([[3.0, 0.0, 0.0, 0.0]])
    one = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    assert loss(zero, three, torch.ones(1)).item() == pytest.approx(0.0)  # negative beyond the margin: free
    assert loss(zero, one, torch.ones(1)).item() == pytest.approx(1.0, abs=1e-4)  # (2 - 1)^2
    assert loss(zero, three, torch.zeros(1)).item() == pytest.approx(9.0, abs=1e-4)  # positive: d^2
    assert loss.one_means == "different"


def test_contrastive_gradient_is_finite_for_identical_embeddings() -> None:
    e = torch.randn(4, 8, requires_grad=True)
    ContrastiveLoss()(e, e.detach().clone(), torch.zeros(4)).backward()
    assert torch.isfinite(e.grad).all()


def test_cosine_similarity_loss_matches_mse_of_cosine() -> None:
    e1, e2, same = _batch(seed=1)
    loss = CosineSimilarityLoss()
    y = pair_labels(same, loss.one_means)  # 1 = same
    cos = (e1 * e2).sum(1) / (e1.norm(dim=1) * e2.norm(dim=1))
    torch.testing.assert_close(loss(e1, e2, y), ((cos - y) ** 2).mean(), rtol=1e-5, atol=1e-6)
    assert loss(e1, e1, torch.ones(len(e1))).item() == pytest.approx(0.0, abs=1e-6)
    assert loss.one_means == "same"
    torch.testing.assert_close(loss(e1, e2, y), F.mse_loss(F.cosine_similarity(e1, e2), y))
