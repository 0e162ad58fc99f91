"""MetricLearningModule: PML losses built at setup, class and two-view batches, the encoder, the configs."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_metric_learning.losses import ArcFaceLoss, NTXentLoss
from pytorch_metric_learning.miners import MultiSimilarityMiner

from prodmatch.backbones.resnet import ResNet18 as ImageEmbeddingNet
from prodmatch.data.splits import ProductSplit
from prodmatch.data.training.datamodule import PairDataModule
from prodmatch.data.training.samplers import MPerClass, Views
from prodmatch.errors import ConfigError
from prodmatch.models.metric import MetricLearningModule
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
        sampler=MPerClass(m=2),
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
        sampler=MPerClass(m=2),
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
    dm = PairDataModule(database, sampler=Views(), batch_size=8, image_size=32, num_workers=0)
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
    with pytest.raises(ConfigError, match="datamodule/sampler=distinct_cards"):
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
    assert dm.sampler.layout in ("cards", "views")
    if model == "resnet_arcface":
        assert module.loss is None  # built at setup, with the datamodule's classes
        module.build_loss(dm.num_classes)
    assert module.loss is not None


# --------------------------------------------------------------------------- contrastive losses (SupCon, NT-Xent)


def _orthogonal_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Two products of two cards each: the cards of one product identical, the products orthogonal."""
    u, v = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    return torch.stack([u, u, v, v]), torch.tensor([0, 0, 1, 1])


@pytest.mark.parametrize("loss_name", ["SupConLoss", "NTXentLoss"])
def test_contrastive_loss_has_its_known_value(loss_name: str) -> None:
    """Each card's positive at cosine 1, its two negatives at 0: -log(e^(1/t) / (e^(1/t) + 2)) per anchor."""
    from pytorch_metric_learning import losses

    embeddings, labels = _orthogonal_pairs()
    t = 0.5
    loss = getattr(losses, loss_name)(temperature=t)(embeddings, labels)
    expected = -np.log(np.exp(1 / t) / (np.exp(1 / t) + 2))
    assert float(loss) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss_name", ["SupConLoss", "NTXentLoss"])
def test_contrastive_gradient_pulls_positives_and_pushes_negatives(loss_name: str) -> None:
    from pytorch_metric_learning import losses

    torch.manual_seed(0)
    embeddings = torch.randn(6, 8, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    loss_fn = getattr(losses, loss_name)(temperature=0.1)

    def cosines(e: torch.Tensor) -> torch.Tensor:
        n = torch.nn.functional.normalize(e, dim=1)
        return n @ n.T

    before = cosines(embeddings.detach())
    loss_fn(embeddings, labels).backward()
    after = cosines((embeddings - 0.05 * embeddings.grad).detach())  # one small step down the gradient
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(6, dtype=torch.bool)
    assert (after - before)[same & off_diagonal].mean() > 0  # positives pulled together
    assert (after - before)[~same].mean() < 0  # negatives pushed apart


def test_supcon_config_trains_the_small_cnn_on_distinct_cards(compose_cfg, database):
    """model=supcon: SupCon at the configured temperature over distinct-card batches; a few steps on one batch
    lower its loss and bring each product's two cards closer."""
    from hydra.utils import instantiate

    from prodmatch.backbones.small_cnn import SmallCNN
    from prodmatch.data.training.samplers import DistinctCards

    cfg = compose_cfg("train", ["model=supcon", "model.loss.temperature=0.2", "model.net.width=8"])
    torch.manual_seed(0)
    module = instantiate(cfg.model)
    assert isinstance(module.net, SmallCNN) and module.loss.temperature == 0.2
    dm = PairDataModule(
        database, sampler=DistinctCards(k=2), label="sku", batch_size=8, image_size=32, num_workers=0,
        split=ProductSplit.draw(database.skus),
    )  # fmt: skip
    batch = next(iter(dm.train_dataloader()))
    assert (batch["label"][0::2] == batch["label"][1::2]).all()  # each product's two cards side by side
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    module.train()
    losses, closeness = [], []
    for _ in range(10):
        optimizer.zero_grad()
        embeddings, labels = module.embed_batch(batch)
        loss = module.loss(embeddings, labels)
        loss.backward()
        optimizer.step()
        normed = torch.nn.functional.normalize(embeddings.detach(), dim=1)
        closeness.append(float((normed[0::2] * normed[1::2]).sum(1).mean()))
        losses.append(loss.item())
    assert losses[-1] < losses[0] and closeness[-1] > closeness[0]
