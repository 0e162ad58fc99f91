"""Metric learning for product identity with pytorch-metric-learning: a PML loss over a batch's embeddings.

A net (an embedding net of :mod:`prodmatch.backbones`, ``model/net=resnet18|small_cnn``) embeds single cards; the
loss, chosen by config (``model.loss``), scores the batch against its labels: supervised contrastive (SupCon) or
NT-Xent over product (or pseudo-product) labels with k distinct cards per product in a batch
(``datamodule/sampler=distinct_cards``), ArcFace / SubCenterArcFace over product classes
(``datamodule/sampler=m_per_class``), or NT-Xent over two augmented views of each card (``views``, labels = card
positions) for label-free training.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from prodmatch.errors import ConfigError
from prodmatch.models.base import (
    ModuleEncoder,
    OptimizerFactory,
    ProdmatchModule,
    SchedulerFactory,
    image_encoder,
)

LossFactory = Callable[..., nn.Module]


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    """Whether ``factory`` (a class, a function or a partial of one) takes a parameter called ``name``.

    A class counts when any ``__init__`` of its MRO names it: PML's SubCenterArcFaceLoss takes
    ``num_classes`` through ``**kwargs`` and hands it on to ArcFaceLoss.
    """
    target = getattr(factory, "func", factory)
    functions = [c.__init__ for c in target.__mro__] if isinstance(target, type) else [target]
    for function in functions:
        try:
            param = inspect.signature(function).parameters.get(name)
        except (TypeError, ValueError):
            continue
        if param is not None and param.kind is not inspect.Parameter.VAR_KEYWORD:
            return True
    return False


def _has_parameters(module: nn.Module | None) -> bool:
    return module is not None and any(True for _ in module.parameters())


class MetricLearningModule(ProdmatchModule):
    """Trains ``net`` with a pytorch-metric-learning ``loss`` (and optional ``miner``) on class batches.

    ``loss``: a PML loss, or a partial of one (``_partial_: true``) that gets ``num_classes`` (the datamodule's
    classes, or ``num_classes`` when set) and ``embedding_size`` (``net.embedding_size``) when its signature
    takes them, at ``setup`` (ArcFace's class centres are trainable, so they join the optimizer).
    ``num_classes`` is recorded in the hyper-parameters, so a checkpoint rebuilds the same loss.
    ``val_loss``: the validation loss; by default the training loss when it has no trainable parameters, else
    NT-Xent (temperature 0.1) over the validation batch's labels, because a class-centre loss cannot score
    products it has no centre for. ``image_size`` / ``encode_*`` set how :attr:`encoder` embeds.
    """

    modality = "image"

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module | LossFactory,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str | None = None,
        miner: nn.Module | None = None,
        val_loss: nn.Module | None = None,
        num_classes: int | None = None,
        image_size: int = 224,
        encode_batch_size: int = 64,
        encode_num_workers: int = 2,
    ) -> None:
        super().__init__(optimizer, scheduler, scheduler_interval)
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler", "miner", "val_loss"])
        self.net = net
        self.miner = miner
        self._loss_factory = loss
        self.loss: nn.Module | None = loss if isinstance(loss, nn.Module) else None
        if self.loss is None and (num_classes is not None or not _accepts(loss, "num_classes")):
            self.build_loss(num_classes)
        # Kept out of the module tree: a loss without weights adds nothing to the checkpoint, and one built
        # after the optimizer must not register late.
        self._aux: dict[str, nn.Module | None] = {"val_loss": val_loss}

    # ------------------------------------------------------------------ losses

    @property
    def embedding_size(self) -> int:
        size = getattr(self.net, "embedding_size", None)
        if size is None:
            raise ConfigError(
                f"model.net {type(self.net).__name__} has no embedding_size; use an embedding net of "
                "prodmatch.backbones, e.g. "
                "prodmatch.backbones.small_cnn.SmallCNN (model/net=small_cnn)"
            )
        return int(size)

    def build_loss(self, num_classes: int | None) -> nn.Module:
        """Build the loss from its partial, with ``num_classes`` / ``embedding_size`` where it takes them."""
        factory = self._loss_factory
        kwargs: dict[str, Any] = {}
        if _accepts(factory, "num_classes"):
            if num_classes is None:
                raise ConfigError(
                    "the metric loss needs num_classes: train with a datamodule, or set model.num_classes"
                )
            kwargs["num_classes"] = int(num_classes)
            self.hparams.num_classes = int(num_classes)
        if _accepts(factory, "embedding_size"):
            kwargs["embedding_size"] = self.embedding_size
        self.loss = factory(**kwargs)
        return self.loss

    @property
    def val_loss(self) -> nn.Module:
        if self._aux["val_loss"] is None:
            from pytorch_metric_learning.losses import NTXentLoss

            parameter_free = self.loss is not None and not _has_parameters(self.loss)
            self._aux["val_loss"] = self.loss if parameter_free else NTXentLoss(temperature=0.1)
        return self._aux["val_loss"]

    def batch_layouts(self) -> dict[str, str]:
        return {"cards": "distinct_cards", "views": "views"}

    def setup(self, stage: str) -> None:
        dm = self._check_datamodule()
        if self.loss is None:
            self.build_loss(self.hparams.num_classes or getattr(dm, "num_classes", None))

    # ------------------------------------------------------------------ steps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def embed_batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings, labels) of a class batch (``x``) or a two-view batch (``a``, ``b``: one label each)."""
        labels = batch["label"]
        if "x" in batch:
            return self(batch["x"]), labels
        # Both views in one forward pass, so BatchNorm sees the whole batch.
        return self(torch.cat([batch["a"], batch["b"]])), torch.cat([labels, labels])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if self.loss is None:
            raise ConfigError("the metric loss is not built; train with trainer.fit(model, datamodule)")
        embeddings, labels = self.embed_batch(batch)
        indices = self.miner(embeddings, labels) if self.miner is not None else None
        loss = self.loss(embeddings, labels, indices)
        self._log_step("train", loss, len(labels))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        embeddings, labels = self.embed_batch(batch)
        self._log_step("val", self.val_loss(embeddings, labels), len(labels))

    # ------------------------------------------------------------------ retrieval

    @property
    def encoder(self) -> ModuleEncoder:
        """The net as a retrieval encoder (``embedding_size``-d, L2-normalised), embedding like evaluate.py."""
        return self.model_encoder()

    def model_encoder(self, pixel_cache: str | None = None) -> ModuleEncoder:
        return image_encoder(self, self.net, self.embedding_size, pixel_cache)
