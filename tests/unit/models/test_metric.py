"""MetricLearningModule: PML losses built at setup, class and two-view batches, the encoder, the configs."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_metric_learning.losses import ArcFaceLoss, NTXentLoss
from pytorch_metric_learning.miners import MultiSimilarityMiner

from prodmatch.data.datamodule import PairDataModule
from prodmatch.data.splits import ProductSplit
from prodmatch.errors import ConfigError
from prodmatch.models.metric import MetricLearningModule
from prodmatch.models.nets import ImageEmbeddingNet
from prodmatch.tasks.instantiators import build


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: tiny batches gain nothing from more, and they thrash a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def database(tiny_catalogs):
    return tiny_catalogs[1]


def _module(loss, **kwargs) -> MetricLearningModule:
    torch.manual_seed(0)
    return MetricLearningModule(
        net=ImageEmbeddingNet(pretrained=False, embedding_size=16),
        loss=loss,
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        image_size=32,
        encode_batch_size=32,
        encode_num_workers=0,
        **kwargs,
    )


def _fit(module, dm, steps: int = 3) -> pl.Trainer:
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=steps,
        limit_val_batches=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=dm)
    return trainer


def test_image_embedding_net_projects():
    net = ImageEmbeddingNet(pretrained=False, embedding_size=24)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 24)
    assert ImageEmbeddingNet(pretrained=False, embedding_size=None).embedding_size == 512
    with pytest.raises(ConfigError, match="embedding_size"):
        ImageEmbeddingNet(pretrained=False, embedding_size=0)


def test_arcface_is_built_at_setup_and_trains_with_the_net(database):
    dm = PairDataModule(
        database,
        label="sku",
        sampler="m_per_class",
        m_per_class=2,
        batch_size=8,
        image_size=32,
        num_workers=0,
        split=ProductSplit.draw(database.skus),
    )
    module = _module(functools.partial(ArcFaceLoss), miner=MultiSimilarityMiner())
    assert module.loss is None  # num_classes comes from the datamodule
    net_before = module.net.projection.weight.detach().clone()
    trainer = _fit(module, dm)
    assert isinstance(module.loss, ArcFaceLoss)
    assert module.loss.W.shape == (16, dm.num_classes) and module.hparams.num_classes == dm.num_classes
    optimised = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert id(module.loss.W) in optimised  # the class centres train with the net
    assert not torch.equal(net_before, module.net.projection.weight)
    assert np.isfinite(float(trainer.callback_metrics["val/loss"]))
    # the recorded num_classes rebuilds the same loss, so a checkpoint's state dict loads
    again = _module(functools.partial(ArcFaceLoss), num_classes=module.hparams.num_classes)
    again.load_state_dict(module.state_dict())
    module.eval()
    vectors = module.encoder.encode(database.subset(np.arange(10)).image_paths()).vectors
    assert vectors.shape == (10, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_arcface_objective_separates_products_on_one_batch(database):
    """A few steps on one fixed batch lower its loss: the gradient reaches net and centres."""
    dm = PairDataModule(
        database,
        label="sku",
        sampler="m_per_class",
        m_per_class=2,
        batch_size=8,
        image_size=32,
        num_workers=0,
        split=ProductSplit.draw(database.skus),
    )
    module = _module(functools.partial(ArcFaceLoss, margin=10, scale=16), num_classes=dm.num_classes)
    batch = next(iter(dm.train_dataloader()))
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    module.train()
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = module.loss(*module.embed_batch(batch))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_ntxent_on_two_views(database):
    dm = PairDataModule(database, sampler="views", batch_size=8, image_size=32, num_workers=0)
    module = _module(NTXentLoss(temperature=0.1))
    batch = next(iter(dm.train_dataloader()))
    embeddings, labels = module.embed_batch(batch)
    assert embeddings.shape == (16, 16) and torch.equal(labels[:8], labels[8:])
    trainer = _fit(module, dm, steps=2)
    assert np.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert module.val_loss is module.loss  # parameter-free: validation uses the training loss


def test_pairs_datamodule_is_rejected(database):
    dm = PairDataModule(database, batch_size=8, image_size=32, num_workers=0)
    module = _module(NTXentLoss())
    with pytest.raises(ConfigError, match="datamodule.sampler=m_per_class"):
        _fit(module, dm)


@pytest.mark.parametrize(
    ("model", "experiment"), [("resnet_arcface", "product_arcface"), ("resnet_ntxent", "product_ntxent")]
)
def test_model_configs_instantiate(compose_cfg, database, model, experiment):
    from hydra.utils import instantiate

    overrides = [f"experiment={experiment}", "datamodule.batch_size=8", "datamodule.num_workers=0"]
    cfg = compose_cfg("train", [*overrides, "datamodule.modality=image"])
    dm = build(cfg.datamodule, database=database, split=ProductSplit.draw(database.skus))
    module = instantiate(cfg.model)
    assert isinstance(module, MetricLearningModule) and isinstance(module.net, ImageEmbeddingNet)
    assert dm.sampler in ("m_per_class", "views")
    if model == "resnet_arcface":
        assert module.loss is None  # built at setup, with the datamodule's classes
        module.build_loss(dm.num_classes)
    assert module.loss is not None
