"""Siamese ResNet18: one shared backbone embeds both cards of a pair; the loss pulls or pushes them."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from prodmatch.backbones.resnet import build_resnet18
from prodmatch.data.pairs import pair_labels
from prodmatch.models.base import OptimizerFactory, ResNetModule, SchedulerFactory


class SiameseModule(ResNetModule):
    """Trains ResNet18 (Identity head, 512-d) on image pairs with an injected pair loss.

    ``loss``: :class:`~prodmatch.models.losses.ContrastiveLoss` (resnet_contrastive) or
    :class:`~prodmatch.models.losses.CosineSimilarityLoss` (resnet_cos); its ``one_means`` attribute says how
    a pair's ``same`` flag becomes its label. ``net``: the backbone (``model.net``: ResNet18 with an Identity head by default); ``image_size`` /
    ``encode_*`` set how :attr:`encoder` embeds.
    """

    def __init__(
        self,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str | None = None,
        net: nn.Module | None = None,
        image_size: int = 224,
        encode_batch_size: int = 64,
        encode_num_workers: int = 2,
    ) -> None:
        super().__init__(optimizer, scheduler, scheduler_interval)
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler"])
        self.backbone = net if net is not None else build_resnet18(pretrained=False)
        self.loss = loss

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def pair_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """Loss of one batch of pairs: both sides in one forward pass (BatchNorm sees the whole batch)."""
        a, b = batch["a"], batch["b"]
        e1, e2 = self(torch.cat([a, b])).split(len(a))
        return self.loss(e1, e2, pair_labels(batch["same"], self.loss.one_means))

    def setup(self, stage: str) -> None:
        self._check_datamodule()
