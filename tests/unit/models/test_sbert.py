"""SbertModule with loss=mnrl: sentence-transformers' MultipleNegativesRankingLoss on same-product pairs."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from sentence_transformers.sentence_transformer import losses as st_losses

from prodmatch.data.splits import ProductSplit
from prodmatch.data.training.datamodule import PairDataModule
from prodmatch.data.training.samplers import Positives
from prodmatch.errors import ConfigError
from prodmatch.models.sbert import SbertModule
from prodmatch.tasks.instantiators import build

LOCAL = {"vocab_size": 400, "hidden_size": 32, "heads": 2, "num_layers": 1, "intermediate_size": 64}
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


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


def _positives(database, **kwargs) -> PairDataModule:
    args = dict(modality="text", label="sku", sampler=Positives(), batch_size=16, num_workers=0, seed=0)
    args["split"] = ProductSplit.draw(database.skus)
    return PairDataModule(database, **(args | kwargs))


def _sbert(tmp_path: Path, **kwargs) -> SbertModule:
    adamw = functools.partial(torch.optim.AdamW, lr=1e-3)
    return SbertModule(
        adamw, pretrained=False, local=LOCAL, cache_dir=str(tmp_path), pooling="mean", **kwargs
    )


def test_mnrl_loss_equals_sentence_transformers(database, tmp_path) -> None:
    module = _sbert(tmp_path, loss="mnrl", scale=10.0)
    module.build_model(database)
    module.eval()
    batch = next(iter(_positives(database).train_dataloader()))
    model = module.model
    direct = st_losses.MultipleNegativesRankingLoss(model, scale=10.0)
    features = [model.preprocess(batch["a"]), model.preprocess(batch["b"])]
    with torch.no_grad():
        torch.testing.assert_close(module.pair_loss(batch), direct(features, None))


def test_mnrl_training_lowers_the_loss_of_its_batches(database, tmp_path) -> None:
    pl.seed_everything(0)
    module = _sbert(tmp_path, loss="mnrl")
    dm = _positives(database)
    module.build_model(database)
    batch = next(iter(dm.train_dataloader()))
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)

    def loss_now() -> float:
        module.eval()
        with torch.no_grad():
            value = module.pair_loss(batch).item()
        module.train()
        return value

    before = loss_now()
    for _ in range(8):
        optimizer.zero_grad()
        module.pair_loss(batch).backward()
        optimizer.step()
    assert loss_now() < 0.8 * before


def test_fit_with_positives_and_sampler_mismatch(database, tmp_path) -> None:
    trainer_args = dict(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer = pl.Trainer(**trainer_args)
    trainer.fit(_sbert(tmp_path, loss="mnrl"), datamodule=_positives(database))
    assert {"train/loss", "val/loss"} <= set(trainer.callback_metrics)
    pairs = PairDataModule(database, modality="text", batch_size=16, num_workers=0)
    with pytest.raises(ConfigError, match="datamodule/sampler=positives"):
        pl.Trainer(**trainer_args).fit(_sbert(tmp_path, loss="mnrl"), datamodule=pairs)
    with pytest.raises(ConfigError, match="datamodule/sampler=pairs"):
        pl.Trainer(**trainer_args).fit(_sbert(tmp_path), datamodule=_positives(database))
    with pytest.raises(ConfigError, match="model.loss='triplet'"):
        _sbert(tmp_path, loss="triplet")


def test_sbert_mnrl_config_instantiates(compose_cfg, database) -> None:
    from hydra.utils import instantiate

    cfg = compose_cfg(
        "train", ["experiment=product_sbert_mnrl", "datamodule.num_workers=0", "datamodule.modality=text"]
    )
    module = instantiate(cfg.model)
    dm = build(cfg.datamodule, database=database, split=ProductSplit.draw(database.skus))
    assert module.hparams.loss == "mnrl" and dm.sampler.name == "positives" and dm.label == "sku"
