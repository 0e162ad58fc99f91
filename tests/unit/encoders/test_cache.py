"""The embedding cache: keys, atomic files with ordinary permissions, memory-mapped reads and replayed results."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from prodmatch.backbones.resnet import build_resnet18
from prodmatch.data.catalog import Catalog, load_catalog
from prodmatch.encoders.base import EncodeResult, WrappedEncoder
from prodmatch.encoders.cache import EmbeddingCache
from prodmatch.encoders.image_embedder import ImageBatchEmbedder
from prodmatch.encoders.rows import KEYS_SUFFIX
from prodmatch.encoders.tfidf import TfidfEncoder
from prodmatch.utils.vectors import l2_normalize
from tests.helpers.faults import no_room, replace_keeping_size_and_mtime, same_size_image, temporaries
from tests.unit.encoders.cards import assert_unit_rows, image_encoder, write_catalog


class Counting:
    """Wraps an encoder and counts encode calls; ``fake`` skips the real work (only the cache is under test)."""

    def __init__(self, inner, fake: bool = False) -> None:
        self.inner = inner
        self.fake = fake
        self.calls = 0
        self.modality = inner.modality

    @property
    def dim(self) -> int:
        return 4 if self.fake else self.inner.dim

    def encode(self, inputs):
        self.calls += 1
        if self.fake:
            return EncodeResult(l2_normalize(np.ones((len(inputs), 4))))
        return self.inner.encode(inputs)

    def cache_key(self):
        return self.inner.cache_key()


class CountingOut(Counting):
    """Also accepts ``out``, like the image encoder, so the cache can stream into a memory-mapped file."""

    def encode(self, inputs, out=None):
        self.calls += 1
        return self.inner.encode(inputs, out=out)


@pytest.fixture
def private_catalog(tmp_path: Path) -> Catalog:
    """A catalog of its own: these tests edit its images."""
    root = tmp_path / "cat"
    return load_catalog(write_catalog(root), root)


def test_cache_hit_and_invalidation(catalog: Catalog, tmp_path: Path, caplog):
    texts = catalog.texts("title")
    cache = EmbeddingCache(tmp_path / "emb")
    encoder = Counting(TfidfEncoder(dim=4).fit(texts))
    with caplog.at_level(logging.INFO, logger="prodmatch.encoders"):
        first = cache.get_or_compute(encoder, texts).vectors
        second = cache.get_or_compute(encoder, texts).vectors
    assert encoder.calls == 1 and cache.hits == 1 and cache.misses == 1
    np.testing.assert_array_equal(first, second)
    assert isinstance(second, np.memmap) and not second.flags.writeable  # read back memory-mapped
    assert "cache hit" in caplog.text and "cache miss" in caplog.text
    assert not list((tmp_path / "emb").rglob("*.tmp"))  # atomic writes left no temp file

    part = cache.get_or_compute(encoder, texts[:4])  # rows stored by the first call: read back, not encoded
    assert encoder.calls == 1 and cache.hits == 2
    np.testing.assert_array_equal(part.vectors, first[:4])
    cache.get_or_compute(encoder, [*texts[:4], "a card never seen"])  # one new row -> one row encoded
    assert encoder.calls == 2 and cache.rows_embedded == len(texts) + 1
    changed = Counting(TfidfEncoder(dim=4, ngram_range=(1, 3)).fit(texts))  # other params -> miss
    cache.get_or_compute(changed, texts)
    assert changed.calls == 1
    refit = Counting(TfidfEncoder(dim=4).fit(catalog.texts("text_all")))  # other corpus -> miss
    cache.get_or_compute(refit, texts)
    assert refit.calls == 1
    assert len([p for p in (tmp_path / "emb").iterdir() if p.is_dir()]) == 3  # one row store per encoder


def test_cache_files_are_not_private(catalog: Catalog, tmp_path: Path):
    texts = catalog.texts("title")
    old = os.umask(0o022)
    try:
        EmbeddingCache(tmp_path).get_or_compute(TfidfEncoder(dim=3).fit(texts), texts)
    finally:
        os.umask(old)
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert {f.suffix for f in files} == {".npy", ".json"}
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o644}


class Uncacheable(Counting):
    def cache_key(self):
        return None


def test_cache_skips_uncacheable_and_disabled(catalog: Catalog, tmp_path: Path):
    embedder = ImageBatchEmbedder(build_resnet18(pretrained=False).eval(), 512, 32, num_workers=0)
    encoder = Uncacheable(embedder, fake=True)
    cache = EmbeddingCache(tmp_path / "emb")
    cache.get_or_compute(encoder, catalog.image_paths())
    cache.get_or_compute(encoder, catalog.image_paths())
    assert encoder.calls == 2 and not (tmp_path / "emb").exists()

    texts = catalog.texts("title")
    tfidf = Counting(TfidfEncoder(dim=3).fit(texts))
    off = EmbeddingCache(None)
    off.get_or_compute(tfidf, texts)
    off.get_or_compute(tfidf, texts)
    assert tfidf.calls == 2


def _seeded_embedder(seed: int) -> ImageBatchEmbedder:
    torch.manual_seed(seed)
    return ImageBatchEmbedder(build_resnet18(pretrained=False).eval(), 512, 32, num_workers=0)


def test_a_nets_vectors_are_cached_under_a_digest_of_its_live_weights(catalog: Catalog, tmp_path: Path):
    """Two nets built from one seed (the jobs of a sweep) embed once; a changed weight embeds again."""
    paths = catalog.image_paths()
    cache = EmbeddingCache(tmp_path)
    first = Counting(_seeded_embedder(0))
    vectors = np.array(cache.get_or_compute(first, paths).vectors)
    again = Counting(_seeded_embedder(0))
    np.testing.assert_array_equal(cache.get_or_compute(again, paths).vectors, vectors)
    assert (first.calls, again.calls) == (1, 0)
    assert _seeded_embedder(1).cache_key() != again.cache_key()

    with torch.no_grad():
        next(again.inner.net.parameters()).add_(0.01)  # a training step changes the weights in place
    changed = cache.get_or_compute(again, paths).vectors
    assert again.calls == 1 and not np.allclose(changed, vectors)
    np.testing.assert_allclose(changed, again.inner.encode(paths).vectors, atol=1e-6)


def test_cache_streams_big_outputs_into_a_memory_map(catalog: Catalog, tmp_path: Path):
    paths = catalog.image_paths()
    expected = image_encoder(seed=0).encode(paths).vectors
    cache = EmbeddingCache(tmp_path, memmap_min_bytes=0)  # every output counts as big
    encoder = CountingOut(image_encoder(seed=0))
    vectors = cache.get_or_compute(encoder, paths).vectors
    assert isinstance(vectors, np.memmap)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert_unit_rows(cache.get_or_compute(encoder, paths).vectors, len(paths), 512)
    assert encoder.calls == 1
    assert not list(tmp_path.rglob(".*"))  # no temporary file left behind


def test_cache_with_image_encoder(catalog: Catalog, tmp_path: Path):
    cache = EmbeddingCache(tmp_path)
    paths = catalog.image_paths()
    encoder = Counting(image_encoder(seed=0))
    first = cache.get_or_compute(encoder, paths).vectors
    assert_unit_rows(cache.get_or_compute(encoder, paths).vectors, len(paths), 512)
    assert encoder.calls == 1
    reseeded = Counting(image_encoder(seed=1))
    assert not np.allclose(cache.get_or_compute(reseeded, paths).vectors, first)
    assert reseeded.calls == 1


def test_image_cache_misses_when_an_image_file_is_replaced(private_catalog: Catalog, tmp_path: Path):
    cache = EmbeddingCache(tmp_path / "cache")
    encoder = Counting(image_encoder(seed=0))
    paths = private_catalog.image_paths()
    cache.get_or_compute(encoder, paths)
    path = paths[0]
    Image.new("RGB", (40, 40), (250, 10, 10)).save(path, format=Image.open(path).format)
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    cache.get_or_compute(encoder, paths)
    assert encoder.calls == 2, "a replaced image must be re-encoded, not served from the cache"


def test_cache_hit_replays_the_encode_result(private_catalog: Catalog, tmp_path: Path):
    paths = private_catalog.image_paths()
    paths[2].write_bytes(b"not an image any more")
    cache = EmbeddingCache(tmp_path / "cache")
    first = cache.get_or_compute(image_encoder(seed=0), paths)
    vectors = first.vectors
    assert first.counts == {"unreadable_image": 1}
    assert np.isnan(vectors[2]).all() and not np.isnan(np.delete(vectors, 2, axis=0)).any()

    hit = cache.get_or_compute(image_encoder(seed=0), paths)
    assert cache.hits == 1
    assert hit.counts == {"unreadable_image": 1}
    assert hit.examples == {"unreadable_image": str(paths[2])}
    np.testing.assert_array_equal(hit.vectors, vectors)


def test_a_wrapped_encoders_cache_hit_gives_the_same_result(private_catalog: Catalog, tmp_path: Path):
    """A wrapper (a loaded checkpoint's encoder) is what the cache is asked for: a hit is its result."""
    paths = private_catalog.image_paths()
    paths[2].write_bytes(b"not an image any more")
    cache = EmbeddingCache(tmp_path / "cache")

    class Keyed(WrappedEncoder):
        def encode(self, inputs):
            return self.inner.encode(inputs)

        def cache_key(self):
            return "wrapped|" + self.inner.cache_key()

    computed = cache.get_or_compute(Keyed(image_encoder(seed=0)), paths)
    hit = cache.get_or_compute(Keyed(image_encoder(seed=0)), paths)
    assert cache.hits == 1
    assert hit.counts == computed.counts == {"unreadable_image": 1}
    assert hit.examples == computed.examples == {"unreadable_image": str(paths[2])}


def test_missing_image_file_is_encoded_without_caching(private_catalog: Catalog, tmp_path: Path):
    paths = private_catalog.image_paths()
    paths[0].unlink()
    cache = EmbeddingCache(tmp_path / "cache")
    result = cache.get_or_compute(image_encoder(seed=0), paths)
    assert np.isnan(result.vectors[0]).all() and result.counts == {"unreadable_image": 1}
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("in_place", [True, False], ids=["cp -p", "rsync -a"])
def test_an_image_replaced_with_the_same_size_and_mtime_misses(
    private_catalog: Catalog, tmp_path: Path, in_place: bool
):
    cache = EmbeddingCache(tmp_path / "cache")
    encoder = Counting(image_encoder(seed=0))
    paths = private_catalog.image_paths()
    cache.get_or_compute(encoder, paths)
    replace_keeping_size_and_mtime(paths[0], same_size_image(paths[0], (250, 10, 10)), in_place=in_place)
    np.testing.assert_array_equal(
        cache.get_or_compute(encoder, paths).vectors, image_encoder(seed=0).encode(paths).vectors
    )
    assert encoder.calls == 2, "a replaced image must be re-encoded, not served from the cache"


def _tear(entry: Path, how: str) -> None:
    """What a power loss (or a foreign writer) can leave in an entry's place."""
    meta = entry.with_suffix(".json")
    if how == "empty vectors":
        entry.write_bytes(b"")
    elif how == "short vectors":
        entry.write_bytes(entry.read_bytes()[:-7])
    elif how == "empty meta":
        meta.write_bytes(b"")
    elif how == "wrong shape":
        np.save(entry, np.zeros((3, 4), dtype=np.float32))


@pytest.mark.parametrize("how", ["empty vectors", "short vectors", "empty meta", "wrong shape"])
def test_a_torn_entry_is_one_warning_and_written_again(catalog: Catalog, tmp_path: Path, caplog, how: str):
    texts = catalog.texts("title")
    cache = EmbeddingCache(tmp_path)
    encoder = Counting(TfidfEncoder(dim=4).fit(texts))
    expected = np.array(cache.get_or_compute(encoder, texts).vectors)  # a copy: the entry is torn below
    (keys,) = tmp_path.rglob("*" + KEYS_SUFFIX)  # the one segment's vectors file
    entry = keys.with_name(keys.name[: -len(KEYS_SUFFIX)] + ".npy")
    _tear(entry, how)
    with caplog.at_level(logging.WARNING, logger="prodmatch.encoders"):
        np.testing.assert_array_equal(cache.get_or_compute(encoder, texts).vectors, expected)
    assert encoder.calls == 2 and len(caplog.records) == 1 and entry.stem in caplog.text
    caplog.clear()
    np.testing.assert_array_equal(EmbeddingCache(tmp_path).get_or_compute(encoder, texts).vectors, expected)
    assert encoder.calls == 2 and not caplog.records  # whole again: a hit


@pytest.mark.parametrize("big", [False, True], ids=["in memory", "memory-mapped"])
def test_no_room_for_the_cache_encodes_without_it_with_one_warning(
    catalog: Catalog, tmp_path: Path, caplog, big: bool
):
    """The cache is an optimisation: a full disk (or quota) under it never ends the run."""
    paths = catalog.image_paths()
    expected = image_encoder(seed=0).encode(paths).vectors
    folder = tmp_path / "cache"
    with no_room(folder):
        cache = EmbeddingCache(folder, memmap_min_bytes=0 if big else 1 << 40)
        encoder = CountingOut(image_encoder(seed=0))
        with caplog.at_level(logging.WARNING, logger="prodmatch.encoders"):
            np.testing.assert_allclose(cache.get_or_compute(encoder, paths).vectors, expected, atol=1e-6)
            np.testing.assert_allclose(
                cache.get_or_compute(encoder, paths[:3]).vectors, expected[:3], atol=1e-6
            )
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1 and "no space left" in warnings[0] and "cache=false" in warnings[0]
        assert encoder.calls == 2 and not cache.writable  # no second try at writing in this run
        assert (
            temporaries(folder) == [] and not list(folder.rglob("*.npy")) and not list(folder.rglob("*.json"))
        )


def test_a_killed_writers_temporary_is_removed_by_the_next_write(catalog: Catalog, tmp_path: Path):
    code = (
        "import os, sys\n"
        "from prodmatch.utils.atomic import new_temporary\n"
        "new_temporary(sys.argv[1])  # a writer killed while its entry was half written\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "textencoder-text-abc.npy")], check=True)
    assert len(temporaries(tmp_path)) == 1
    texts = catalog.texts("title")
    EmbeddingCache(tmp_path).get_or_compute(TfidfEncoder(dim=4).fit(texts), texts)
    assert temporaries(tmp_path) == []
