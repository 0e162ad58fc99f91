"""ResNet18 classifier over the database targets.

Two retrieval encoders: `model`, the penultimate layer (the backbone, the study's embedding), and
`model_posterior`, the class posterior (softmax over the targets). The cosine of two posteriors is near 1 when the
classifier puts both cards in the same category and near 0 otherwise, and it is flat inside a category, so fused
with a product channel it sorts by category without reordering the products within one.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from prodmatch.backbones.resnet import ResNet18
from prodmatch.errors import ConfigError
from prodmatch.models.base import (
    ModuleEncoder,
    OptimizerFactory,
    ResNetModule,
    SchedulerFactory,
    feature_dim,
    image_encoder,
)


class ClassifierModule(ResNetModule):
    """Cross-entropy on the targets of both cards of every pair in a batch.

    ``num_classes``: the number of database targets (train.py passes the datamodule's count when the config
    leaves it null, so the saved model config rebuilds the same head). The study clips gradients at 0.1: ``Trainer(gradient_clip_val=0.1)``.
    """

    retrieval_encoder_names = ("model", "model_posterior")

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str | None = None,
        num_classes: int | None = None,
        net: nn.Module | None = None,
        image_size: int = 224,
        encode_batch_size: int = 64,
        encode_num_workers: int = 2,
    ) -> None:
        super().__init__(optimizer, scheduler, scheduler_interval)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.backbone = net if net is not None else ResNet18(pretrained=False)
        self.head: nn.Linear | None = None
        if num_classes is not None:
            self._build_head(num_classes)

    def _build_head(self, num_classes: int) -> None:
        if num_classes < 2:
            raise ConfigError(f"the classifier needs at least 2 targets, got num_classes={num_classes}")
        self.head = nn.Linear(feature_dim(self.backbone), int(num_classes))
        self.train_acc = MulticlassAccuracy(num_classes=int(num_classes), average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=int(num_classes), average="micro")

    def setup(self, stage: str) -> None:
        dm = self._check_datamodule()
        n = getattr(dm, "num_classes", None)
        if self.head is None:
            if n is None:
                raise ConfigError(
                    "ClassifierModule needs num_classes; pass it or train with a PairDataModule"
                )
            self._build_head(n)
        elif n is not None and n != self.head.out_features:
            raise ConfigError(
                f"the classifier has {self.head.out_features} classes but the database has {n} targets; "
                "set model.num_classes=null to take the count from the data"
            )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.head(self.backbone(images))

    def retrieval_encoder(self, name: str, pixel_cache: str | None = None) -> ModuleEncoder:
        if name == "model_posterior":
            return self.posterior_encoder(pixel_cache)
        return super().retrieval_encoder(name, pixel_cache)

    def posterior_encoder(self, pixel_cache: str | None = None) -> ModuleEncoder:
        """The class posterior [B, num_classes] as a retrieval encoder (L2-normalised like every channel)."""
        if self.head is None:
            raise ConfigError(
                "the classifier's posterior needs its head; pass model.num_classes or attach the datamodule"
            )
        return image_encoder(self, Posterior(self.backbone, self.head), self.head.out_features, pixel_cache)

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        # Both cards of each pair are labelled examples: the classifier uses the pair batches as plain images.
        images = torch.cat([batch["a"], batch["b"]])
        targets = torch.cat([batch["target_a"], batch["target_b"]])
        logits = self(images)
        loss = F.cross_entropy(logits, targets)
        acc = self.train_acc if stage == "train" else self.val_acc
        acc(logits, targets)
        self._log_step(stage, loss, len(images))
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(images))
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")


class Posterior(nn.Module):
    """softmax(head(backbone(x))): a classifier's class probabilities, sharing its layers."""

    def __init__(self, backbone: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.train(backbone.training)  # an encoder restores the mode it found: the backbone's, not a default

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.head(self.backbone(images)).float(), dim=1)
