"""Encoders (image / text / tf-idf) and the embedding cache, on a hand-made catalog of a few cards.

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
import pandas as pd
import pytest
import torch
from PIL import Image

from prodmatch.data.catalog import Catalog, load_catalog
from prodmatch.encoders import image as image_mod
from prodmatch.encoders import text as text_mod
from prodmatch.encoders.base import EmbeddingCache, l2_normalize, resolve_device
from prodmatch.encoders.image import ImageEncoder, build_resnet18
from prodmatch.encoders.text import TextEncoder, build_local_sentence_model, load_sentence_model
from prodmatch.encoders.tfidf import TfidfEncoder
from prodmatch.errors import ConfigError, WeightsUnavailableError

TINY_LOCAL = {"hidden_size": 32, "num_layers": 1, "heads": 2, "intermediate_size": 64, "vocab_size": 300}

CARDS = [
    ("Беговая дорожка Torneo Smarta T-314", "begovye_dorozhki", "Torneo", "складная, 12 км/ч"),
    ("Беговая дорожка Torneo Smarta T-314 складная", "begovye_dorozhki", "Torneo", "складная, 12 км/ч"),
    ("Велотренажер Oxygen Cardio Concept IV", "velotrenazhery", "Oxygen", "магнитный, 8 уровней"),
    ("Гребной тренажер Concept2 Model D", "grebnye_trenazhery", "Concept2", "воздушный"),
    ("Эллиптический тренажер Sole E35", "ellipticheskie_trenazhery", "Sole", "маховик 13 кг"),
    ("Степпер Torneo Twister S-211", "steppery", "Torneo", "поворотный"),
    ("Мультистанция Body Solid EXM-1500S", "multistantsii", "Body Solid", "стек 72 кг"),
]


def write_catalog(root: Path, name: str = "cards", cards=CARDS, seed: int = 0) -> Path:
    """A schema-complete CSV plus one small image per card (varied sizes and modes)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (title, target, brand, chars) in enumerate(cards):
        ref = f"images/{name}_{i}.png"
        pixels = rng.integers(0, 256, size=(40 + 3 * i, 48, 3), dtype=np.uint8)
        img = Image.fromarray(pixels)
        (img.convert("L") if i % 3 == 2 else img).save(root / ref)
        rows.append(
            {
                "title": title,
                "price": 10000 + 1000 * i,
                "cat_1": "Кардиотренажеры",
                "cat_2": brand,
                "cat_3": "",
                "caracteristics": chars,
                "img_ref": ref,
                "target": target,
                "dealer": "shop",
            }
        )
    csv = root / f"{name}.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    root = tmp_path_factory.mktemp("catalog")
    return load_catalog(write_catalog(root), root)


def image_encoder(**kwargs) -> ImageEncoder:
    base = dict(pretrained=False, image_size=32, batch_size=4, num_workers=0, device="cpu", progress=False)
    return ImageEncoder(**{**base, **kwargs})


def text_encoder(cache_dir: Path, **kwargs) -> TextEncoder:
    base = dict(pretrained=False, local=TINY_LOCAL, cache_dir=str(cache_dir), device="cpu", progress=False)
    return TextEncoder(**{**base, **kwargs})


def assert_unit_rows(x: np.ndarray, rows: int, dim: int) -> None:
    assert x.shape == (rows, dim)
    assert x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


# --------------------------------------------------------------------------- base helpers


def test_l2_normalize_keeps_zero_rows_finite():
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device"):
        resolve_device("not-a-device")


# --------------------------------------------------------------------------- image


@pytest.fixture(scope="module")
def image_vectors(catalog: Catalog) -> np.ndarray:
    """Random-init (seed 0) ResNet18 embeddings of the catalog, batch size 5."""
    return image_encoder(seed=0, batch_size=5).encode(catalog, "image")


def test_image_encoder_shape_norm_and_seed(catalog: Catalog, image_vectors: np.ndarray):
    assert_unit_rows(image_vectors, len(catalog), 512)
    np.testing.assert_array_equal(image_encoder(seed=0, batch_size=5).encode(catalog, "image"), image_vectors)
    assert not np.allclose(image_encoder(seed=1, batch_size=5).encode(catalog, "image"), image_vectors)


def test_image_encoder_batch_size_invariant(catalog: Catalog, image_vectors: np.ndarray):
    small = image_encoder(seed=0, batch_size=2).encode(catalog, "image")
    np.testing.assert_allclose(small, image_vectors, atol=1e-5)


def test_image_encoder_with_workers(catalog: Catalog, image_vectors: np.ndarray):
    workers = image_encoder(seed=0, batch_size=5, num_workers=2).encode(catalog, "image")
    np.testing.assert_allclose(workers, image_vectors, atol=1e-6)


def test_image_encoder_restores_training_mode_of_given_backbone(catalog: Catalog):
    backbone = build_resnet18(pretrained=False)
    backbone.train()
    encoder = ImageEncoder(backbone=backbone, image_size=32, num_workers=0, progress=False)
    assert encoder.cache_key("image") is None  # a module being trained must never be cached
    assert encoder.encode(catalog, "image").shape == (len(catalog), 512)
    assert backbone.training


def test_image_weights_from_local_state_dict(catalog: Catalog, tmp_path: Path):
    torch.manual_seed(3)
    source = build_resnet18(pretrained=False)
    path = tmp_path / "resnet18.pth"
    # A wrapped checkpoint with a classifier head of another size: prefix and head are handled.
    state = {f"backbone.{k}": v for k, v in source.state_dict().items()}
    state["backbone.fc.weight"] = torch.zeros(7, 512)
    torch.save({"state_dict": state}, path)
    encoder = image_encoder(pretrained=True, weights=str(path))
    expected = image_encoder(backbone=source).encode(catalog, "image")
    np.testing.assert_allclose(encoder.encode(catalog, "image"), expected, atol=1e-6)
    assert str(path.resolve()) in encoder.cache_key("image")


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
        image_encoder(pretrained=True, weights=str(bad)).load()


@pytest.mark.parametrize("host_up", [False, True])
def test_image_weights_download_unavailable(monkeypatch, tmp_path: Path, host_up: bool):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing cached
    monkeypatch.setattr(image_mod, "_host_reachable", lambda url, timeout=3.0: host_up)

    def no_download(self, *args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(type(image_mod.ResNet18_Weights.IMAGENET1K_V1), "get_state_dict", no_download)
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
        image_encoder(seed=0).cache_key("image"),
        image_encoder(seed=1).cache_key("image"),
        image_encoder(image_size=64).cache_key("image"),
        image_encoder(pretrained=True).cache_key("image"),
    }
    assert len(keys) == 4


# --------------------------------------------------------------------------- text: unavailable weights


def test_text_hub_model_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as info:
        TextEncoder("prodmatch-test/no-such-model", device="cpu").load()
    assert time.monotonic() - start < 10  # no retry loop
    message = str(info.value)
    assert "prodmatch-test/no-such-model" in message and "pretrained=false" in message
    assert "encoders.text.model_name_or_path=" in message and "\n" not in message


def test_text_hub_unreachable_without_offline_flag(monkeypatch):
    monkeypatch.setattr(text_mod, "hub_offline_by_env", lambda: False)
    monkeypatch.setattr(text_mod, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(WeightsUnavailableError, match="unreachable"):
        load_sentence_model("prodmatch-test/no-such-model", device="cpu")


def test_text_missing_local_dir(tmp_path: Path):
    missing = tmp_path / "models" / "rubert-tiny2"
    with pytest.raises(WeightsUnavailableError) as info:
        load_sentence_model(str(missing), device="cpu")
    assert str(missing) in str(info.value) and "pretrained=false" in str(info.value)


# --------------------------------------------------------------------------- text: locally built model


def test_local_text_model(catalog: Catalog, tmp_path: Path):
    encoder = text_encoder(tmp_path / "a")
    encoder.prepare([catalog], "title")
    vectors = encoder.encode(catalog, "title")
    assert_unit_rows(vectors, len(catalog), TINY_LOCAL["hidden_size"])
    assert encoder.dim == TINY_LOCAL["hidden_size"]

    # The tokenizer was trained on the catalog text: its words are in the vocabulary, not [UNK].
    model = encoder.model_for("title")
    tokens = model.tokenizer.tokenize("беговая дорожка torneo")
    assert tokens and "[UNK]" not in tokens

    # Same texts + config + seed, built from scratch elsewhere -> the same vectors.
    again = text_encoder(tmp_path / "b")
    again.prepare([catalog], "title")
    np.testing.assert_allclose(again.encode(catalog, "title"), vectors, atol=1e-6)
    assert again.cache_key("title") == encoder.cache_key("title")

    # Another seed -> another model.
    other = text_encoder(tmp_path / "c", seed=1)
    other.prepare([catalog], "title")
    assert not np.allclose(other.encode(catalog, "title"), vectors)
    assert other.cache_key("title") != encoder.cache_key("title")


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
    first = text_encoder(tmp_path)
    first.prepare([catalog], "title")
    expected = first.encode(catalog, "title")

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the model dir exists and must be reused")

    monkeypatch.setattr(text_mod, "build_local_sentence_model", no_rebuild)
    second = text_encoder(tmp_path)
    second.prepare([catalog], "title")
    np.testing.assert_array_equal(second.encode(catalog, "title"), expected)


def test_local_text_model_needs_prepare(catalog: Catalog, tmp_path: Path):
    encoder = text_encoder(tmp_path)
    assert encoder.cache_key("title") is None
    with pytest.raises(ConfigError, match="prepare"):
        encoder.encode(catalog, "title")


def test_local_text_config_is_strict():
    with pytest.raises(ConfigError, match="hidden"):
        TextEncoder(pretrained=False, local={"hidden": 64})
    with pytest.raises(ConfigError, match="pooling"):
        TextEncoder(pooling="max")


# --------------------------------------------------------------------------- tf-idf


def fitted_tfidf(catalog: Catalog, view: str = "title", **kwargs) -> TfidfEncoder:
    encoder = TfidfEncoder(**kwargs)
    encoder.prepare([catalog], view)
    return encoder


def test_tfidf_similarities(catalog: Catalog):
    vectors = fitted_tfidf(catalog, dim=None).encode(catalog, "title")
    assert_unit_rows(vectors, len(catalog), vectors.shape[1])
    sims = vectors @ vectors.T
    np.testing.assert_allclose(np.diag(sims), 1.0, atol=1e-5)
    # The two Torneo treadmills are closer to each other than to the rowing machine.
    assert sims[0, 1] > 0.8 and sims[0, 1] > sims[0, 3] + 0.3


def test_tfidf_identical_titles_cosine_one(tmp_path: Path):
    cards = [CARDS[0], CARDS[0], CARDS[3]]
    cat = load_catalog(write_catalog(tmp_path, cards=cards), tmp_path)
    vectors = fitted_tfidf(cat, dim=2).encode(cat, "title")
    assert float(vectors[0] @ vectors[1]) == pytest.approx(1.0, abs=1e-5)


def test_tfidf_dimension_reduction(catalog: Catalog):
    encoder = fitted_tfidf(catalog, "text_all", dim=5, seed=0)
    vectors = encoder.encode(catalog, "text_all")
    assert_unit_rows(vectors, len(catalog), 5)
    assert encoder.dim == 5
    again = fitted_tfidf(catalog, "text_all", dim=5, seed=0).encode(catalog, "text_all")
    np.testing.assert_allclose(vectors, again, atol=1e-5)


def test_tfidf_fits_on_all_catalogs(catalog: Catalog):
    queries = catalog.subset(np.arange(3))
    encoder = TfidfEncoder(dim=None)
    encoder.prepare([queries, catalog], "title")
    assert encoder.encode(queries, "title").shape[1] == encoder.encode(catalog, "title").shape[1]


# --------------------------------------------------------------------------- embedding cache


class Counting:
    """Wraps an encoder and counts encode calls."""

    def __init__(self, inner, fake: bool = False) -> None:
        self.inner = inner
        self.fake = fake  # skip the real work: only the cache's decisions are under test
        self.calls = 0

    def encode(self, catalog, view):
        self.calls += 1
        if self.fake:
            return l2_normalize(np.ones((len(catalog), 4)))
        return self.inner.encode(catalog, view)

    def cache_key(self, view):
        return self.inner.cache_key(view)


def test_cache_hit_and_invalidation(catalog: Catalog, tmp_path: Path, caplog):
    cache = EmbeddingCache(tmp_path / "emb")
    encoder = Counting(fitted_tfidf(catalog, dim=4))
    with caplog.at_level(logging.INFO, logger="prodmatch.encoders"):
        first = cache.get_or_compute(encoder, catalog, "title")
        second = cache.get_or_compute(encoder, catalog, "title")
    assert encoder.calls == 1 and cache.hits == 1 and cache.misses == 1
    np.testing.assert_array_equal(first, second)
    assert "cache hit" in caplog.text and "cache miss" in caplog.text
    assert not list((tmp_path / "emb").glob("*.tmp"))  # atomic write left no temp file

    # Changed catalog -> miss.
    cache.get_or_compute(encoder, catalog.subset(np.arange(4)), "title")
    assert encoder.calls == 2
    # Changed config (another n-gram range) -> miss.
    changed = Counting(fitted_tfidf(catalog, dim=4, ngram_range=(1, 3)))
    cache.get_or_compute(changed, catalog, "title")
    assert changed.calls == 1
    # Another view -> miss.
    encoder.inner.prepare([catalog], "title_cat")
    cache.get_or_compute(encoder, catalog, "title_cat")
    assert encoder.calls == 3
    assert len(list((tmp_path / "emb").glob("*.npy"))) == 4


def test_cache_skips_uncacheable_and_disabled(catalog: Catalog, tmp_path: Path):
    backbone = build_resnet18(pretrained=False)
    encoder = Counting(image_encoder(backbone=backbone), fake=True)
    cache = EmbeddingCache(tmp_path / "emb")
    cache.get_or_compute(encoder, catalog, "image")
    cache.get_or_compute(encoder, catalog, "image")
    assert encoder.calls == 2 and not (tmp_path / "emb").exists()

    off = EmbeddingCache(None)
    tfidf = Counting(fitted_tfidf(catalog, dim=3))
    off.get_or_compute(tfidf, catalog, "title")
    off.get_or_compute(tfidf, catalog, "title")
    assert tfidf.calls == 2


def test_cache_with_image_encoder(catalog: Catalog, tmp_path: Path):
    cache = EmbeddingCache(tmp_path)
    encoder = Counting(image_encoder(seed=0))
    first = cache.get_or_compute(encoder, catalog, "image")
    assert_unit_rows(cache.get_or_compute(encoder, catalog, "image"), len(catalog), 512)
    assert encoder.calls == 1
    reseeded = Counting(image_encoder(seed=1))
    assert not np.allclose(cache.get_or_compute(reseeded, catalog, "image"), first)
    assert reseeded.calls == 1


def test_image_cache_misses_when_an_image_file_is_replaced(tmp_path: Path):
    catalog = load_catalog(write_catalog(tmp_path), tmp_path)  # a private copy: this test edits an image
    cache = EmbeddingCache(tmp_path / "cache")
    encoder = Counting(image_encoder(seed=0))
    cache.get_or_compute(encoder, catalog, "image")
    path = catalog.image_paths()[0]
    Image.new("RGB", (40, 40), (250, 10, 10)).save(path, format=Image.open(path).format)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    cache.get_or_compute(encoder, catalog, "image")
    assert encoder.calls == 2, "a replaced image must be re-encoded, not served from the cache"
