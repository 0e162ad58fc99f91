from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from prodmatch.errors import ConfigError
from prodmatch.models.base import MODEL_CONFIG_KEY
from prodmatch.models.loading import instantiate_model, load_trained_encoders, load_trained_module


class _Payload:
    """An object whose unpickling runs a command: what a tampered checkpoint carries."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


MODEL = {
    "_target_": "prodmatch.models.siamese.SiameseModule",
    "net": {"_target_": "prodmatch.backbones.resnet.build_resnet18", "pretrained": False},
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


METRIC_MODEL = {
    "_target_": "prodmatch.models.metric.MetricLearningModule",
    "net": {"_target_": "prodmatch.backbones.resnet.ResNet18", "pretrained": False, "embedding_size": 8},
    "loss": {"_target_": "pytorch_metric_learning.losses.SupConLoss"},
    "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
    "image_size": 32,
}


@pytest.mark.parametrize(
    ("model", "stored"),
    [
        (MODEL, "prodmatch.encoders.image.build_resnet18"),
        (METRIC_MODEL, "prodmatch.models.nets.ImageEmbeddingNet"),
    ],
)
def test_a_checkpoint_that_names_a_moved_net_reloads(tmp_path, model, stored: str):
    """A checkpoint whose stored config names its net at a former place rebuilds it at the current one, and
    every weight loads (the parameter names are the same)."""
    import pytorch_lightning as pl

    pl.seed_everything(0)
    module = instantiate_model(OmegaConf.create(model))
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    config = checkpoint[MODEL_CONFIG_KEY]
    checkpoint[MODEL_CONFIG_KEY] = {**config, "net": {**config["net"], "_target_": stored}}
    torch.save(checkpoint, tmp_path / "m.ckpt")
    pl.seed_everything(1)  # a different random init: every weight must come from the checkpoint
    loaded = load_trained_module(tmp_path / "m.ckpt")
    state = loaded.state_dict()
    for key, value in module.state_dict().items():
        torch.testing.assert_close(state[key], value)


def test_a_checkpoints_encoder_is_cached_under_a_digest_of_its_weights(tmp_path):
    """A loaded checkpoint is cached (a module only before its first training step), and another checkpoint's
    key differs."""
    import pytorch_lightning as pl

    pl.seed_everything(0)
    module = instantiate_model(OmegaConf.create(MODEL))
    before_fit = module.encoder.cache_key()  # keyed by a digest of the initial weights
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "a.ckpt")
    with torch.no_grad():
        module.backbone.conv1.weight[0, 0, 0, 0] += 1e-3  # one weight apart
    other = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(other)
    torch.save(other, tmp_path / "b.ckpt")
    (first, modality), (again, _) = (
        load_trained_encoders(tmp_path / "a.ckpt"),
        load_trained_encoders(tmp_path / "a.ckpt"),
    )
    first, again = first["model"], again["model"]
    assert modality == "image" and first.cache_key() == again.cache_key() and first.cache_key() is not None
    assert load_trained_encoders(tmp_path / "b.ckpt")[0]["model"].cache_key() != first.cache_key()
    assert before_fit is not None and module.encoder.cache_key() != before_fit
    assert first.dim == module.encoder.dim and not first.needs_fit


def test_missing_or_foreign_checkpoints_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such checkpoint"):
        load_trained_module(tmp_path / "missing.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(ConfigError, match="holds no model config"):
        load_trained_module(tmp_path / "plain.ckpt")


CLASSIFIER = {
    "_target_": "prodmatch.models.classifier.ClassifierModule",
    "net": {"_target_": "prodmatch.backbones.resnet.build_resnet18", "pretrained": False},
    "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
    "num_classes": 3,
    "image_size": 32,
    "encode_num_workers": 0,
}


def test_a_classifier_checkpoint_offers_its_posterior_under_its_own_cache_key(tmp_path, tiny_catalogs):
    """`model_posterior` embeds a card as its class probabilities: rows of num_classes that sum to 1 before the
    L2 norm, the argmax the classifier's own prediction; its cache key differs from the features'."""
    import pytorch_lightning as pl

    tiny_images = [str(p) for p in tiny_catalogs[0].image_paths()[:6]]
    pl.seed_everything(0)
    module = instantiate_model(OmegaConf.create(CLASSIFIER))
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "c.ckpt")
    encoders, modality = load_trained_encoders(tmp_path / "c.ckpt")
    assert modality == "image" and set(encoders) == {"model", "model_posterior"}
    posterior = encoders["model_posterior"]
    assert posterior.dim == 3 and posterior.cache_key() != encoders["model"].cache_key()
    rows = posterior.encode(tiny_images).vectors
    assert rows.shape == (len(tiny_images), 3)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-5)
    assert (rows >= 0).all()
    loaded = load_trained_module(tmp_path / "c.ckpt")
    batch = torch.stack([posterior.inner.dataset(tiny_images)[i][0] for i in range(len(tiny_images))])
    with torch.no_grad():
        from prodmatch.data.images import IMAGENET_MEAN, IMAGENET_STD, normalize_batch

        logits = loaded(normalize_batch(batch, IMAGENET_MEAN, IMAGENET_STD))
    probs = torch.softmax(logits, dim=1).numpy()
    np.testing.assert_allclose(rows, probs / np.linalg.norm(probs, axis=1, keepdims=True), atol=1e-5)


def test_only_a_classifier_offers_a_posterior():
    module = instantiate_model(OmegaConf.create(MODEL))
    assert set(module.retrieval_encoders()) == {"model"}
