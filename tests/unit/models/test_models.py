"""LightningModules on the tiny catalog: losses fall, Lightning wiring works, encoders embed like evaluate.py."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from sentence_transformers.sentence_transformer import losses as st_losses

from prodmatch.backbones.resnet import build_resnet18
from prodmatch.data.training.augment import Augment
from prodmatch.data.training.datamodule import PairDataModule
from prodmatch.errors import ConfigError
from prodmatch.models.base import linear_warmup
from prodmatch.models.classifier import ClassifierModule
from prodmatch.models.losses import ContrastiveLoss, CosineSimilarityLoss
from prodmatch.models.sbert import SbertModule
from prodmatch.models.siamese import SiameseModule

ADAM = functools.partial(torch.optim.Adam, lr=1e-3)
LOCAL = {"vocab_size": 400, "hidden_size": 32, "heads": 2, "num_layers": 1, "intermediate_size": 64}
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


class LossRecorder(pl.Callback):
    """Training losses in step order."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def _trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def _overfit(module: pl.LightningModule, dm: PairDataModule, steps: int) -> list[float]:
    """Train ``steps`` times on the same first batch (no augmentation, no shuffling); return the losses."""
    recorder = LossRecorder()
    trainer = _trainer(
        max_epochs=steps,
        overfit_batches=1,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=10_000,
        callbacks=[recorder],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, datamodule=dm)
    assert len(recorder.losses) == steps
    return recorder.losses


def _falls(losses: list[float], factor: float) -> bool:
    return np.mean(losses[-2:]) < factor * np.mean(losses[:2])


@pytest.fixture(scope="module")
def database(tiny_catalogs):
    return tiny_catalogs[1]


@pytest.fixture(scope="module")
def queries(tiny_catalogs):
    return tiny_catalogs[0]


def _image_dm(database, **kwargs) -> PairDataModule:
    args = dict(image_size=32, batch_size=6, num_workers=0, augment=None, seed=0)
    return PairDataModule(database, **{**args, **kwargs})


def _check_unit_vectors(vectors: np.ndarray, rows: int, dim: int) -> None:
    assert vectors.shape == (rows, dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# --------------------------------------------------------------------------- image modules


@pytest.mark.parametrize(
    "loss", [ContrastiveLoss(margin=2.0), CosineSimilarityLoss()], ids=["contrastive", "cos"]
)
def test_siamese_overfits_a_batch(database, loss) -> None:
    pl.seed_everything(0)
    module = SiameseModule(loss, ADAM, image_size=32)
    losses = _overfit(module, _image_dm(database), steps=6)
    assert _falls(losses, 0.5), losses


def test_siamese_fit_logs_and_encodes(database, queries) -> None:
    pl.seed_everything(0)
    step_lr = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=7, gamma=0.3)
    module = SiameseModule(ContrastiveLoss(), ADAM, step_lr, image_size=32, encode_num_workers=0)
    dm = _image_dm(database, augment=Augment())
    trainer = _trainer(
        max_epochs=2, limit_train_batches=2, limit_val_batches=1, reload_dataloaders_every_n_epochs=1
    )
    trainer.fit(module, datamodule=dm)
    assert {"train/loss", "val/loss"} <= set(trainer.callback_metrics)
    assert trainer.lr_scheduler_configs[0].interval == "epoch"
    assert module.modality == "image"
    encoder = module.encoder
    assert encoder.cache_key() is None
    module.train()
    with pytest.raises(
        RuntimeError, match="eval mode"
    ):  # the caller owns the mode; encoding never switches it
        encoder.encode(queries.image_paths())
    module.eval()
    _check_unit_vectors(encoder.encode(queries.image_paths()).vectors, len(queries), 512)
    assert not module.training


def test_a_sweeps_seeded_initial_models_share_cached_vectors(queries, tmp_path) -> None:
    """The jobs of `model=resnet_contrastive,resnet_cos` start from the same seeded backbone: one cache entry."""
    from prodmatch.encoders.cache import EmbeddingCache

    cache, paths = EmbeddingCache(tmp_path), queries.image_paths()
    keys = []
    for loss in (ContrastiveLoss(), CosineSimilarityLoss()):
        pl.seed_everything(3)
        module = SiameseModule(loss, ADAM, image_size=32, encode_num_workers=0).eval()
        keys.append(module.encoder.cache_key())
        cache.get_or_compute(module.encoder, paths)
    assert keys[0] is not None and keys[0] == keys[1]
    assert (cache.misses, cache.hits) == (1, 1)
    pl.seed_everything(4)
    assert SiameseModule(ContrastiveLoss(), ADAM, image_size=32).encoder.cache_key() != keys[0]


def test_seeded_random_init_is_deterministic() -> None:
    weights = []
    for _ in range(2):
        pl.seed_everything(3)
        weights.append(SiameseModule(CosineSimilarityLoss(), ADAM).backbone.backbone.conv1.weight)
    torch.testing.assert_close(weights[0], weights[1])


def test_pretrained_backbone_from_a_local_weights_file(tmp_path) -> None:
    pl.seed_everything(5)
    state = build_resnet18(pretrained=False).state_dict()
    torch.save(state, tmp_path / "resnet18.pth")
    pl.seed_everything(6)
    module = ClassifierModule(
        ADAM, net=build_resnet18(pretrained=True, weights=str(tmp_path / "resnet18.pth")), num_classes=3
    )
    torch.testing.assert_close(module.backbone.conv1.weight, state["conv1.weight"])


def test_classifier_overfits_and_takes_classes_from_data(database) -> None:
    pl.seed_everything(0)
    module = ClassifierModule(ADAM, image_size=32)
    dm = _image_dm(database)
    losses = _overfit(module, dm, steps=6)
    assert module.head.out_features == dm.num_classes
    assert _falls(losses, 0.5), losses


def test_classifier_fit_with_one_cycle_logs_accuracy(database, queries) -> None:
    pl.seed_everything(0)
    one_cycle = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1e-3)
    module = ClassifierModule(ADAM, one_cycle, image_size=32, encode_num_workers=0)
    trainer = _trainer(
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        reload_dataloaders_every_n_epochs=1,
        gradient_clip_val=0.1,
    )
    trainer.fit(module, datamodule=_image_dm(database))
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= set(trainer.callback_metrics)
    config = trainer.lr_scheduler_configs[0]
    assert (
        config.interval == "step" and config.scheduler.total_steps == trainer.estimated_stepping_batches == 4
    )
    module.eval()
    _check_unit_vectors(module.encoder.encode(queries.image_paths()).vectors, len(queries), 512)


def test_modules_refuse_the_other_modality(database) -> None:
    module = ClassifierModule(ADAM, num_classes=3)
    text_dm = PairDataModule(database, modality="text", num_workers=0)
    with pytest.raises(ConfigError, match="modality"):
        _trainer(max_epochs=1, limit_train_batches=1).fit(module, datamodule=text_dm)


# --------------------------------------------------------------------------- sentence model


def _text_dm(database, **kwargs) -> PairDataModule:
    args = dict(modality="text", text_view="title_cat", batch_size=16, num_workers=0, seed=0)
    return PairDataModule(database, **{**args, **kwargs})


def _sbert(tmp_path: Path, **kwargs) -> SbertModule:
    adamw = functools.partial(torch.optim.AdamW, lr=kwargs.pop("lr", 1e-3))
    return SbertModule(adamw, pretrained=False, local=LOCAL, cache_dir=str(tmp_path), **kwargs)


def test_sbert_loss_equals_sentence_transformers_contrastive_loss(database, tmp_path) -> None:
    module = _sbert(tmp_path, margin=0.7)
    module.build_model(database)
    module.eval()  # no dropout: both computations see the same embeddings
    batch = next(iter(_text_dm(database).train_dataloader()))
    model = module.model
    direct = st_losses.ContrastiveLoss(model, margin=0.7)
    features = [model.preprocess(batch["a"]), model.preprocess(batch["b"])]
    labels = batch["same"].float()  # sentence-transformers: 1 = same
    with torch.no_grad():
        torch.testing.assert_close(module.pair_loss(batch), direct(features, labels))
    # every trainable parameter gets a gradient (the unused BERT pooler is frozen), as plain DDP requires
    module.pair_loss(batch).backward()
    assert all(p.grad is not None for p in module.parameters() if p.requires_grad)


def _eval_loss(module: SbertModule, batch: dict) -> float:
    """Pair loss without dropout, leaving the module in training mode."""
    module.eval()
    with torch.no_grad():
        loss = float(module.pair_loss(batch))
    module.train()
    return loss


def test_sbert_overfits_a_batch(database, tmp_path) -> None:
    pl.seed_everything(0)
    # mean pooling: a random-init BERT's CLS output barely depends on the input, so CLS learns slowly from scratch
    module = _sbert(tmp_path, pooling="mean")
    dm = _text_dm(database)
    module.build_model(database)
    first = next(iter(torch.utils.data.DataLoader(dm.train_dataloader().dataset, batch_size=dm.batch_size)))
    before = _eval_loss(module, first)
    _overfit(module, dm, steps=10)  # trains on exactly this first batch
    assert _eval_loss(module, first) < 0.5 * before


def test_sbert_fit_logs_encodes_and_reloads(database, queries, tmp_path) -> None:
    pl.seed_everything(0)
    warmup = functools.partial(linear_warmup, warmup_ratio=0.1)
    module = SbertModule(
        functools.partial(torch.optim.AdamW, lr=1e-3),
        warmup,
        pretrained=False,
        local=LOCAL,
        cache_dir=str(tmp_path),
        encode_batch_size=32,
    )
    trainer = _trainer(
        max_epochs=2, limit_train_batches=3, limit_val_batches=1, reload_dataloaders_every_n_epochs=1
    )
    trainer.fit(module, datamodule=_text_dm(database))
    assert {"train/loss", "val/loss"} <= set(trainer.callback_metrics)
    config = trainer.lr_scheduler_configs[0]
    assert config.interval == "step" and config.scheduler.get_last_lr()[0] < 1e-3  # warm-up, then decay
    assert module.modality == "text" and module.train_view == "title_cat"
    encoder = module.encoder
    assert encoder.cache_key() is None
    _check_unit_vectors(encoder.encode(queries.texts("title")).vectors, len(queries), LOCAL["hidden_size"])
    assert module.training  # sentence-transformers' encode switches to eval; the encoder hands the mode back
    # the locally built model is recorded, so a checkpoint rebuilds the same tokenizer and architecture
    reloaded = SbertModule(
        ADAM, pretrained=False, local=LOCAL, local_model_dir=module.hparams.local_model_dir
    )
    # and a saved model dir loads as a pretrained model (the local-dir path of model_name_or_path)
    from_dir = SbertModule(ADAM, model_name_or_path=module.hparams.local_model_dir, pretrained=True)
    module.eval()
    expected = encoder.encode(queries.texts("title")).vectors
    for other in (reloaded, from_dir):
        other.load_state_dict(module.state_dict())
        other.eval()
        np.testing.assert_allclose(other.encoder.encode(queries.texts("title")).vectors, expected, atol=1e-5)


def test_sbert_without_model_says_what_to_do(tmp_path) -> None:
    module = _sbert(tmp_path)
    with pytest.raises(ConfigError, match="build_model"):
        _ = module.encoder
