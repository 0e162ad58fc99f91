"""Plumbing shared by the LightningModules: optimizer/scheduler wiring and the module-backed encoder."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from prodmatch.backbones.resnet import FEATURE_DIM
from prodmatch.encoders.base import IMAGE_MODALITY, EncodeResult, WrappedEncoder
from prodmatch.encoders.image_embedder import ImageBatchEmbedder
from prodmatch.errors import ConfigError

if TYPE_CHECKING:
    from prodmatch.data.training.datamodule import PairDataModule

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], Optimizer]
SchedulerFactory = Callable[..., Any]

# Where a checkpoint keeps the resolved `model` config (plain data, so weights-only loading can read it).
MODEL_CONFIG_KEY = "prodmatch_model_config"
# Scheduler arguments that take the run's total number of optimizer steps (OneCycleLR, linear warmup).
_TOTAL_STEP_ARGS = ("total_steps", "num_training_steps")


def linear_warmup(optimizer: Optimizer, num_training_steps: int, warmup_ratio: float = 0.1) -> LambdaLR:
    """Linear warm-up over ``warmup_ratio`` of the steps, then linear decay to 0 (the usual BERT schedule)."""
    if not 0.0 <= warmup_ratio < 1.0:
        raise ConfigError(f"warmup_ratio={warmup_ratio} is outside [0, 1); set e.g. warmup_ratio=0.1")
    from transformers import get_linear_schedule_with_warmup  # heavy import: only for the text models

    total = max(int(num_training_steps), 1)
    return get_linear_schedule_with_warmup(optimizer, int(round(total * warmup_ratio)), total)


def _missing_total_step_arg(factory: SchedulerFactory) -> str | None:
    """Name of the scheduler's total-steps argument when the config left it for the trainer to fill."""
    bound = getattr(factory, "keywords", {}) or {}
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return None
    for name in _TOTAL_STEP_ARGS:
        if name in params and bound.get(name) is None:
            return name
    return None


class ProdmatchModule(pl.LightningModule):
    """Base of the training modules: ``optimizer`` / ``scheduler`` are partials (``_partial_: true`` nodes).

    A scheduler whose signature has ``total_steps`` or ``num_training_steps`` (OneCycleLR, :func:`linear_warmup`)
    gets ``trainer.estimated_stepping_batches`` and steps per batch; any other steps per epoch (StepLR).
    """

    modality: str = "image"
    # the channel encoder names the module offers (`model`, the classifier's `model_posterior`)
    retrieval_encoder_names: tuple[str, ...] = ("model",)

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str | None = None,
    ) -> None:
        super().__init__()
        if scheduler_interval not in (None, "step", "epoch"):
            raise ConfigError(
                f"scheduler_interval={scheduler_interval!r}; use 'step', 'epoch' or null (auto)"
            )
        self._optimizer_factory = optimizer
        self._scheduler_factory = scheduler
        self._scheduler_interval = scheduler_interval

    def configure_optimizers(self) -> Any:
        optimizer = self._optimizer_factory(self.parameters())
        if self._scheduler_factory is None:
            return optimizer
        total_arg = _missing_total_step_arg(self._scheduler_factory)
        kwargs = {total_arg: int(self.trainer.estimated_stepping_batches)} if total_arg else {}
        scheduler = self._scheduler_factory(optimizer, **kwargs)
        interval = self._scheduler_interval or ("step" if total_arg else "epoch")
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    @property
    def encoder(self) -> ModuleEncoder:
        """The module as a retrieval encoder (the channel encoder `model`)."""
        raise NotImplementedError

    def retrieval_encoders(self, pixel_cache: str | None = None) -> dict[str, ModuleEncoder]:
        """Every retrieval encoder the module offers, by channel encoder name (:attr:`retrieval_encoder_names`).

        ``pixel_cache``: a folder for the pixel store of decoded eval crops, given to the image encoders as they
        are built (the retrieval callback passes the run's); text encoders have no use for it.
        """
        return {name: self.retrieval_encoder(name, pixel_cache) for name in self.retrieval_encoder_names}

    def retrieval_encoder(self, name: str, pixel_cache: str | None = None) -> ModuleEncoder:
        """The retrieval encoder a channel names: `model` is :meth:`model_encoder`; subclasses add theirs."""
        if name != "model":
            raise KeyError(name)
        return self.model_encoder(pixel_cache)

    def model_encoder(self, pixel_cache: str | None = None) -> ModuleEncoder:
        """The module as the channel encoder `model` (image modules read and write ``pixel_cache``)."""
        return self.encoder

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the resolved model config, so the checkpoint alone rebuilds this module (models/loading.py)."""
        config = getattr(self, "model_config", None)
        if config is not None:
            checkpoint[MODEL_CONFIG_KEY] = config

    def _datamodule(self) -> PairDataModule | None:
        trainer = self._trainer
        return getattr(trainer, "datamodule", None) if trainer is not None else None

    def batch_layouts(self) -> dict[str, str]:
        """The batch layouts this module trains on, each with the ``datamodule/sampler`` node that gives it."""
        return {"pairs": "pairs"}

    def _check_datamodule(self) -> PairDataModule | None:
        """The attached datamodule, after checking it serves this module's modality and batch layout."""
        dm = self._datamodule()
        dm_modality = getattr(dm, "modality", None)
        if dm_modality is not None and dm_modality != self.modality:
            raise ConfigError(
                f"{type(self).__name__} trains on {self.modality} pairs but the datamodule serves "
                f"{dm_modality}; set the data modality to {self.modality!r}"
            )
        sampler = getattr(dm, "sampler", None)
        layouts = self.batch_layouts()
        if sampler is not None and sampler.layout not in layouts:
            names = " or ".join(f"datamodule/sampler={name}" for name in dict.fromkeys(layouts.values()))
            raise ConfigError(
                f"{type(self).__name__} trains on {' or '.join(layouts)} batches but datamodule/sampler="
                f"{sampler.name} gives {sampler.layout} batches; set {names}"
            )
        return dm

    def pair_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """The loss of a batch of pairs (see PairDataModule for the batch layout)."""
        raise NotImplementedError(f"{type(self).__name__} defines its own training and validation steps")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.pair_loss(batch)
        self._log_step("train", loss, len(batch["a"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._log_step("val", self.pair_loss(batch), len(batch["a"]))

    def _log_step(self, stage: str, loss: torch.Tensor, batch_size: int) -> None:
        # train/loss per step, val/loss per epoch: each under its plain name (no _step/_epoch suffix).
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=stage != "train",
            prog_bar=True,
            batch_size=batch_size,
            sync_dist=stage != "train",
        )


class ModuleEncoder(WrappedEncoder):
    """An encoder over a module's live weights, passing its inner encoder's results on as they are.

    Never fitted. Cached only before the module's first training step, keyed by a digest of the weights it
    embeds with (the image batch embedder's key): the seeded initial weights that every job of a sweep starts
    from embed a catalog once, while weights in training, which never recur, write nothing to the cache. A text
    module's encoder keys its configuration, not its live weights, so it is never cached. The module's mode is
    the caller's: the retrieval callback puts it in eval mode for a whole evaluation, a loaded checkpoint is in
    eval mode, Lightning's predict loop sets it.
    """

    needs_fit = False

    def __init__(self, inner: Any, module: torch.nn.Module) -> None:
        super().__init__(inner)
        self.module = module

    def fit(self, texts: Sequence[str]) -> ModuleEncoder:
        return self

    def encode(self, inputs: Sequence[Any]) -> EncodeResult:
        return self.inner.encode(inputs)

    def cache_key(self) -> str | None:
        if self.modality != IMAGE_MODALITY or self.module.global_step > 0:
            return None
        return self.inner.cache_key()


class ResNetModule(ProdmatchModule):
    """Base of the image modules: a ``backbone`` (``model.net``, an embedding net) and its retrieval encoder.

    Subclasses save ``image_size``, ``encode_batch_size`` and ``encode_num_workers`` as hyper-parameters.
    """

    modality = "image"
    backbone: torch.nn.Module

    @property
    def encoder(self) -> ModuleEncoder:
        """The backbone as a retrieval encoder (L2-normalised), embedding exactly like evaluate.py."""
        return self.model_encoder()

    def model_encoder(self, pixel_cache: str | None = None) -> ModuleEncoder:
        return image_encoder(self, self.backbone, feature_dim(self.backbone), pixel_cache=pixel_cache)


def feature_dim(net: torch.nn.Module) -> int:
    """The width of a net's output rows: its ``embedding_size`` (an embedding net), else a bare ResNet18's 512."""
    return int(getattr(net, "embedding_size", FEATURE_DIM))


def image_encoder(
    module: ProdmatchModule, net: torch.nn.Module, dim: int | None = None, pixel_cache: str | None = None
) -> ModuleEncoder:
    """`net` (images -> [B, dim] rows; 512 for a bare ResNet18) as a retrieval encoder over `module`'s live
    weights, embedding exactly like evaluate.py; the net is used as it is, nothing is loaded. The module saves
    ``image_size``, ``encode_batch_size`` and ``encode_num_workers`` as hyper-parameters. ``pixel_cache``: the
    folder of the pixel store (decode the images once, read the crops back on later evaluations)."""
    hp = module.hparams
    inner = ImageBatchEmbedder(
        net,
        FEATURE_DIM if dim is None else int(dim),
        hp.image_size,
        batch_size=hp.encode_batch_size,
        num_workers=hp.encode_num_workers,
        pixel_cache=pixel_cache,
    )
    return ModuleEncoder(inner, module)
