"""Image and text encoders on a hand-made catalog of a few cards: inputs in, unit float32 rows out.

Nothing here downloads: pretrained weights are replaced by local files or random init, and the offline paths
are forced (HF_HUB_OFFLINE, an empty torch hub dir, a failing download).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from prodmatch.backbones import resnet as resnet_mod
from prodmatch.backbones.resnet import build_resnet18
from prodmatch.data.catalog import Catalog
from prodmatch.encoders import local_text as local_text_mod
from prodmatch.encoders import sentence as sentence_mod
from prodmatch.encoders.base import Encoder, data_counts, strict_error
from prodmatch.encoders.device import resolve_device
from prodmatch.encoders.image_embedder import ImageBatchEmbedder
from prodmatch.encoders.local_text import build_local_sentence_model
from prodmatch.encoders.sentence import load_sentence_model
from prodmatch.encoders.text import TextEncoder
from prodmatch.errors import ConfigError, WeightsUnavailableError
from tests.unit.encoders.cards import TINY_LOCAL, assert_unit_rows, image_encoder, text_encoder


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device"):
        resolve_device("not-a-device")


def test_encoders_follow_the_protocol(tmp_path: Path):
    image, text = image_encoder(), text_encoder(tmp_path)
    assert isinstance(image, Encoder) and isinstance(text, Encoder)
    assert (image.modality, image.needs_fit) == ("image", False)
    assert (text.modality, text.needs_fit) == ("text", True)
    assert image.fit(["ignored"]) is image


# --------------------------------------------------------------------------- image


@pytest.fixture(scope="module")
def image_vectors(catalog: Catalog) -> np.ndarray:
    """Random-init (seed 0) ResNet18 embeddings of the catalog's images, batch size 5."""
    return image_encoder(seed=0, batch_size=5).encode(catalog.image_paths()).vectors


def test_image_encoder_shape_norm_and_seed(catalog: Catalog, image_vectors: np.ndarray):
    paths = catalog.image_paths()
    assert_unit_rows(image_vectors, len(catalog), 512)
    np.testing.assert_array_equal(image_encoder(seed=0, batch_size=5).encode(paths).vectors, image_vectors)
    assert not np.allclose(image_encoder(seed=1, batch_size=5).encode(paths).vectors, image_vectors)


def test_image_encoder_batch_size_invariant(catalog: Catalog, image_vectors: np.ndarray):
    small = image_encoder(seed=0, batch_size=2).encode(catalog.image_paths()).vectors
    np.testing.assert_allclose(small, image_vectors, atol=1e-5)


def test_image_encoder_with_workers(catalog: Catalog, image_vectors: np.ndarray):
    workers = image_encoder(seed=0, batch_size=5, num_workers=2).encode(catalog.image_paths()).vectors
    np.testing.assert_allclose(workers, image_vectors, atol=1e-6)


def test_image_encoder_fills_a_given_array(catalog: Catalog, image_vectors: np.ndarray):
    out = np.zeros((len(catalog), 512), dtype=np.float32)
    returned = image_encoder(seed=0, batch_size=5).encode(catalog.image_paths(), out=out)
    assert returned.vectors is out
    np.testing.assert_allclose(out, image_vectors, atol=1e-6)


def test_image_encoder_empty_input():
    result = image_encoder().encode([])
    assert result.vectors.shape == (0, 512) and result.vectors.dtype == np.float32 and not result.counts


def test_the_batch_embedder_embeds_any_net_and_refuses_one_in_training_mode(catalog: Catalog):
    backbone = build_resnet18(pretrained=False)
    embedder = ImageBatchEmbedder(backbone, 512, 32, num_workers=0, progress=False)
    key = embedder.cache_key()  # keyed by the live weights: a changed weight is another key
    with torch.no_grad():
        next(backbone.parameters()).add_(0.01)
    assert key is not None and embedder.cache_key() != key
    with pytest.raises(RuntimeError, match="eval mode"):
        embedder.encode(catalog.image_paths())  # the caller owns the mode; the embedder never switches it
    backbone.eval()
    assert embedder.encode(catalog.image_paths()).vectors.shape == (len(catalog), 512)
    assert not backbone.training
    small = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    result = ImageBatchEmbedder(small.eval(), 6, 32, num_workers=0, progress=False).encode(
        catalog.image_paths()
    )
    assert_unit_rows(result.vectors, len(catalog), 6)


def test_image_weights_from_local_state_dict(catalog: Catalog, tmp_path: Path):
    torch.manual_seed(3)
    source = build_resnet18(pretrained=False)
    path = tmp_path / "resnet18.pth"
    # A wrapped checkpoint with a classifier head of another size: prefix and head are handled.
    state = {f"backbone.{k}": v for k, v in source.state_dict().items()}
    state["backbone.fc.weight"] = torch.zeros(7, 512)
    torch.save({"state_dict": state}, path)
    encoder = image_encoder(pretrained=True, weights=str(path))
    embedder = ImageBatchEmbedder(source.eval(), 512, 32, batch_size=4, num_workers=0, progress=False)
    expected = embedder.encode(catalog.image_paths()).vectors
    np.testing.assert_allclose(encoder.encode(catalog.image_paths()).vectors, expected, atol=1e-6)
    # keyed by the weights' bytes, not their path: a copy elsewhere is the same model ...
    key = encoder.cache_key()
    assert str(tmp_path) not in key
    copy = tmp_path / "elsewhere" / "resnet18.pth"
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    assert image_encoder(pretrained=True, weights=str(copy)).cache_key() == key
    # ... and other weights saved at the same path, with the same size and mtime, are another
    stat = path.stat()
    state["backbone.conv1.weight"] = state["backbone.conv1.weight"] + 1
    torch.save({"state_dict": state}, path)
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert image_encoder(pretrained=True, weights=str(path)).cache_key() != key


def test_image_weights_missing_file(tmp_path: Path):
    missing = tmp_path / "nope" / "resnet18.pth"
    with pytest.raises(WeightsUnavailableError) as info:
        build_resnet18(pretrained=True, weights=str(missing))
    message = str(info.value)
    assert str(missing) in message and "pretrained=false" in message and "\n" not in message


def test_image_weights_garbage_file(tmp_path: Path):
    bad = tmp_path / "resnet18.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="pretrained=false"):
        _ = image_encoder(pretrained=True, weights=str(bad)).embedder


@pytest.mark.parametrize("host_up", [False, True])
def test_image_weights_download_unavailable(monkeypatch, tmp_path: Path, host_up: bool):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing cached
    monkeypatch.setattr(resnet_mod, "host_reachable", lambda url, timeout=3.0: host_up)

    def no_download(self, *args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(type(resnet_mod.ResNet18_Weights.IMAGENET1K_V1), "get_state_dict", no_download)
    with pytest.raises(WeightsUnavailableError) as info:
        build_resnet18(pretrained=True, weights="IMAGENET1K_V1")
    message = str(info.value)
    assert "IMAGENET1K_V1" in message and "pretrained=false" in message
    assert "encoders.image.weights=" in message and "\n" not in message


def test_image_weights_unknown_name():
    with pytest.raises(ConfigError, match="IMAGENET1K_V1"):
        build_resnet18(pretrained=True, weights="IMAGENET_V9")


def test_image_cache_key_tracks_config():
    keys = {
        image_encoder(seed=0).cache_key(),
        image_encoder(seed=1).cache_key(),
        image_encoder(image_size=64).cache_key(),
        image_encoder(pretrained=True).cache_key(),
    }
    assert len(keys) == 4


# --------------------------------------------------------------------------- text: unavailable weights


def test_text_hub_model_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as info:
        _ = TextEncoder("prodmatch-test/no-such-model", device="cpu").model
    assert time.monotonic() - start < 10  # no retry loop
    message = str(info.value)
    assert "prodmatch-test/no-such-model" in message and "pretrained=false" in message
    assert "encoders.text.model_name_or_path=" in message and "\n" not in message


def test_text_hub_unreachable_without_offline_flag(monkeypatch):
    monkeypatch.setattr(sentence_mod, "hub_offline_by_env", lambda: False)
    monkeypatch.setattr(sentence_mod, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(WeightsUnavailableError, match="unreachable"):
        load_sentence_model("prodmatch-test/no-such-model", device="cpu")


def test_text_missing_local_dir(tmp_path: Path):
    missing = tmp_path / "models" / "rubert-tiny2"
    with pytest.raises(WeightsUnavailableError) as info:
        load_sentence_model(str(missing), device="cpu")
    assert str(missing) in str(info.value) and "pretrained=false" in str(info.value)


# --------------------------------------------------------------------------- text: locally built model


def test_local_text_model(catalog: Catalog, tmp_path: Path):
    texts = catalog.texts("title")
    encoder = text_encoder(tmp_path / "a").fit(texts)
    vectors = encoder.encode(texts).vectors
    assert_unit_rows(vectors, len(catalog), TINY_LOCAL["hidden_size"])
    assert encoder.dim == TINY_LOCAL["hidden_size"]

    # The tokenizer was trained on the catalog text: its words are in the vocabulary, not [UNK].
    tokens = encoder.model.tokenizer.tokenize("беговая дорожка torneo")
    assert tokens and "[UNK]" not in tokens

    # Same texts + config + seed, built from scratch elsewhere -> the same vectors.
    again = text_encoder(tmp_path / "b").fit(texts)
    np.testing.assert_allclose(again.encode(texts).vectors, vectors, atol=1e-6)
    assert again.cache_key() == encoder.cache_key()

    # Another seed -> another model.
    other = text_encoder(tmp_path / "c", seed=1).fit(texts)
    assert not np.allclose(other.encode(texts).vectors, vectors)
    assert other.cache_key() != encoder.cache_key()


def test_local_text_model_refit_on_another_corpus(catalog: Catalog, tmp_path: Path):
    encoder = text_encoder(tmp_path).fit(catalog.texts("title"))
    key = encoder.cache_key()
    encoder.encode(catalog.texts("title"))
    encoder.fit(catalog.texts("text_all"))
    assert encoder.cache_key() != key
    assert encoder.model.tokenizer.tokenize("маховик") != ["[UNK]"]  # the text_all words are now known


def test_local_text_model_dir_loads_as_sentence_transformer(catalog: Catalog, tmp_path: Path):
    from sentence_transformers import SentenceTransformer

    texts = catalog.texts("title_cat")
    built = build_local_sentence_model(texts, tmp_path / "m", "cls", **TINY_LOCAL)
    reloaded = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    a = built.encode(texts, normalize_embeddings=True, show_progress_bar=False)
    b = reloaded.encode(texts, normalize_embeddings=True, show_progress_bar=False)
    np.testing.assert_allclose(a, b, atol=1e-6)

    mean = load_sentence_model(tmp_path / "m", pooling="mean", device="cpu")
    c = mean.encode(texts, normalize_embeddings=True, show_progress_bar=False)
    assert c.shape == a.shape and not np.allclose(a, c, atol=1e-3)


def test_local_text_model_reused_from_cache_dir(catalog: Catalog, tmp_path: Path, monkeypatch):
    texts = catalog.texts("title")
    expected = text_encoder(tmp_path).fit(texts).encode(texts).vectors

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the model dir exists and must be reused")

    monkeypatch.setattr(local_text_mod, "build_local_sentence_model", no_rebuild)
    np.testing.assert_array_equal(text_encoder(tmp_path).fit(texts).encode(texts).vectors, expected)


def test_local_text_model_needs_fit(catalog: Catalog, tmp_path: Path):
    encoder = text_encoder(tmp_path)
    assert encoder.cache_key() is None
    with pytest.raises(ConfigError, match="fit"):
        encoder.encode(catalog.texts("title"))


def test_text_encoder_given_model_keeps_training_mode(catalog: Catalog, tmp_path: Path):
    model = build_local_sentence_model(catalog.texts("title"), tmp_path / "m", "mean", **TINY_LOCAL)
    model.train()
    encoder = TextEncoder(model=model, progress=False)
    assert encoder.cache_key() is None and not encoder.needs_fit
    assert_unit_rows(encoder.encode(catalog.texts("title")).vectors, len(catalog), TINY_LOCAL["hidden_size"])
    assert model.training


def test_local_text_config_is_strict():
    with pytest.raises(ConfigError, match="hidden"):
        TextEncoder(pretrained=False, local={"hidden": 64})
    with pytest.raises(ConfigError, match="pooling"):
        TextEncoder(pooling="max")


# --------------------------------------------------------------------------- image: bad files met late


def _jpeg(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)
    return path


@pytest.mark.parametrize("num_workers", [0, 2])
def test_image_encoder_survives_bad_files(tmp_path: Path, caplog, num_workers: int):
    good = [_jpeg(tmp_path / f"g{i}.jpg", seed=i) for i in range(3)]
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(_jpeg(tmp_path / "whole.jpg", seed=9).read_bytes()[:900])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"passes an exists check, decodes to nothing")
    paths = [good[0], broken, good[1], truncated, good[2], tmp_path / "gone.jpg"]
    encoder = image_encoder(seed=0, batch_size=4, num_workers=num_workers)
    with caplog.at_level(logging.WARNING, logger="prodmatch.encoders"):
        result = encoder.encode(paths)
    vectors = result.vectors
    nan_rows = np.isnan(vectors).all(axis=1)
    assert nan_rows.tolist() == [False, True, False, False, False, True]
    assert_unit_rows(vectors[~nan_rows], 4, 512)
    assert result.counts == {"unreadable_image": 2, "truncated_image": 1}
    assert result.examples == {"unreadable_image": str(broken), "truncated_image": str(truncated)}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "2 unreadable image(s)" in lines[0] and str(broken) in lines[0]
    # Good rows do not depend on their bad neighbours.
    np.testing.assert_allclose(vectors[[0, 2, 4]], image_encoder(seed=0).encode(good).vectors, atol=1e-5)
    # What a call met is its own: the next call on good files met nothing, and the first result is unchanged.
    assert encoder.encode(good).counts == {} and result.counts["unreadable_image"] == 2


def test_stats_become_metrics_and_a_strict_error():
    stats = {"unreadable_image": 2, "truncated_image": 1}
    examples = {"unreadable_image": "images/a.jpg", "truncated_image": "images/b.jpg"}
    assert data_counts(stats) == {"dropped/unreadable_image": 2, "warnings/truncated_image": 1}
    message = str(strict_error(stats, examples))
    assert "data.strict" in message and "images/a.jpg" in message and "\n" not in message
    assert strict_error({}, {}) is None
