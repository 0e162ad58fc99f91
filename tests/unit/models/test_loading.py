from __future__ import annotations

import os

import pytest
import torch
from omegaconf import OmegaConf

from prodmatch.errors import ConfigError
from prodmatch.models.loading import instantiate_model, load_trained_encoder, load_trained_module


class _Payload:
    """An object whose unpickling runs a command: what a tampered checkpoint carries."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


MODEL = {
    "_target_": "prodmatch.models.siamese.SiameseModule",
    "net": {"_target_": "prodmatch.encoders.image.build_resnet18", "pretrained": False},
    "loss": {"_target_": "prodmatch.models.losses.ContrastiveLoss", "margin": 2.0},
    "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
    "image_size": 32,
}


def test_a_checkpoint_that_carries_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Payload(str(marker))}, path)
    with pytest.raises(ConfigError, match="refused"):
        load_trained_module(path)
    assert not marker.exists()


def test_a_saved_module_reloads_from_its_checkpoint_alone(tmp_path):
    import pytorch_lightning as pl

    pl.seed_everything(0)
    module = instantiate_model(OmegaConf.create(MODEL))
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "m.ckpt")
    pl.seed_everything(1)  # a different random init: every weight must come from the checkpoint
    loaded = load_trained_module(tmp_path / "m.ckpt")
    assert type(loaded) is type(module) and not loaded.training
    torch.testing.assert_close(loaded.backbone.conv1.weight, module.backbone.conv1.weight)


def test_a_checkpoints_encoder_is_cached_under_a_digest_of_its_weights(tmp_path):
    """A module in training is never cached; a loaded checkpoint is, and another checkpoint's key differs."""
    import pytorch_lightning as pl

    pl.seed_everything(0)
    module = instantiate_model(OmegaConf.create(MODEL))
    assert module.encoder.cache_key() is None
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "a.ckpt")
    with torch.no_grad():
        module.backbone.conv1.weight[0, 0, 0, 0] += 1e-3  # one weight apart
    other = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(other)
    torch.save(other, tmp_path / "b.ckpt")
    (first, modality), (again, _) = (
        load_trained_encoder(tmp_path / "a.ckpt"),
        load_trained_encoder(tmp_path / "a.ckpt"),
    )
    assert modality == "image" and first.cache_key() == again.cache_key() and first.cache_key() is not None
    assert load_trained_encoder(tmp_path / "b.ckpt")[0].cache_key() != first.cache_key()
    assert first.dim == module.encoder.dim and not first.needs_fit


def test_missing_or_foreign_checkpoints_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such checkpoint"):
        load_trained_module(tmp_path / "missing.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(ConfigError, match="holds no model config"):
        load_trained_module(tmp_path / "plain.ckpt")
