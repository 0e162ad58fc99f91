"""The embedding cache stores rows by card: a changed card is embedded again, nothing else; torn stores rebuild."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodmatch.data.catalog import Catalog, load_catalog
from prodmatch.encoders.cache import EmbeddingCache
from prodmatch.encoders.rows import KEYS_SUFFIX
from tests.unit.encoders.cards import image_encoder, write_catalog


class Recording:
    """Wraps an encoder and records the inputs of every encode call."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.modality = inner.modality
        self.calls: list[list[str]] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, inputs):
        self.calls.append([str(p) for p in inputs])
        return self.inner.encode(inputs)

    def cache_key(self):
        return self.inner.cache_key()


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    root = tmp_path / "cat"
    return load_catalog(write_catalog(root), root)


def _replace_image(path: Path, colour: tuple[int, int, int]) -> None:
    Image.new("RGB", (40, 40), colour).save(path, format="PNG")
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def _segments(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*" + KEYS_SUFFIX))


def test_only_changed_cards_are_embedded_again_and_match_a_cold_run(catalog: Catalog, tmp_path: Path):
    paths = catalog.image_paths()
    cache = EmbeddingCache(tmp_path / "cache")
    encoder = Recording(image_encoder(seed=0))
    cache.get_or_compute(encoder, paths)
    _replace_image(paths[3], (200, 30, 30))
    _replace_image(paths[5], (30, 200, 30))

    rerun = cache.get_or_compute(encoder, paths)
    assert encoder.calls[1] == [str(paths[3]), str(paths[5])]  # the changed cards only
    assert cache.rows_embedded == len(paths) + 2
    cold = EmbeddingCache(tmp_path / "cold").get_or_compute(image_encoder(seed=0), paths)
    np.testing.assert_array_equal(rerun.vectors, cold.vectors)
    assert rerun.counts == cold.counts == {}

    again = cache.get_or_compute(encoder, paths)  # everything stored now: nothing encoded
    assert len(encoder.calls) == 2
    np.testing.assert_array_equal(again.vectors, cold.vectors)


def test_a_changed_card_that_no_longer_decodes_is_reported_on_every_run(catalog: Catalog, tmp_path: Path):
    paths = catalog.image_paths()
    cache = EmbeddingCache(tmp_path / "cache")
    encoder = Recording(image_encoder(seed=0))
    cache.get_or_compute(encoder, paths)
    paths[2].write_bytes(b"not an image any more")
    for _ in range(2):  # encoded once (partial), then read back whole
        result = cache.get_or_compute(encoder, paths)
        assert result.counts == {"unreadable_image": 1}
        assert result.examples == {"unreadable_image": str(paths[2])}
        assert np.isnan(result.vectors[2]).all() and not np.isnan(np.delete(result.vectors, 2, axis=0)).any()
    assert [len(c) for c in encoder.calls] == [len(paths), 1]


def test_repeated_and_reordered_inputs_are_read_back(catalog: Catalog, tmp_path: Path):
    paths = catalog.image_paths()
    cache = EmbeddingCache(tmp_path / "cache")
    encoder = Recording(image_encoder(seed=0))
    first = np.array(cache.get_or_compute(encoder, paths).vectors)
    order = [4, 0, 0, 6, 2]
    picked = cache.get_or_compute(encoder, [paths[i] for i in order])
    assert len(encoder.calls) == 1
    np.testing.assert_array_equal(picked.vectors, first[order])


@pytest.mark.parametrize("part", [".npy", KEYS_SUFFIX, ".json"])
def test_a_torn_row_store_is_rebuilt(catalog: Catalog, tmp_path: Path, caplog, part: str):
    paths = catalog.image_paths()
    cache = EmbeddingCache(tmp_path / "cache")
    expected = np.array(cache.get_or_compute(Recording(image_encoder(seed=0)), paths).vectors)
    (keys,) = _segments(tmp_path / "cache")
    torn = keys.with_name(keys.name[: -len(KEYS_SUFFIX)] + part)
    torn.write_bytes(torn.read_bytes()[: max(1, torn.stat().st_size // 2)])  # cut short mid-write

    encoder = Recording(image_encoder(seed=0))
    with caplog.at_level(logging.WARNING, logger="prodmatch.encoders"):
        rebuilt = EmbeddingCache(tmp_path / "cache").get_or_compute(encoder, paths)
    assert "unreadable" in caplog.text and caplog.text.count("WARNING") == 1
    assert [len(c) for c in encoder.calls] == [len(paths)]  # every row embedded again
    np.testing.assert_array_equal(rebuilt.vectors, expected)
    (segment,) = _segments(tmp_path / "cache")  # the torn segment is gone, the new one whole
    assert segment != keys
    hit = EmbeddingCache(tmp_path / "cache").get_or_compute(encoder, paths)
    assert len(encoder.calls) == 1
    np.testing.assert_array_equal(hit.vectors, expected)


def test_a_segment_without_its_keys_file_is_not_read(catalog: Catalog, tmp_path: Path):
    """The keys file is written last: a writer stopped before it leaves rows that are never read."""
    paths = catalog.image_paths()
    cache = EmbeddingCache(tmp_path / "cache")
    cache.get_or_compute(Recording(image_encoder(seed=0)), paths)
    (keys,) = _segments(tmp_path / "cache")
    keys.unlink()
    encoder = Recording(image_encoder(seed=0))
    EmbeddingCache(tmp_path / "cache").get_or_compute(encoder, paths)
    assert [len(c) for c in encoder.calls] == [len(paths)]


def _no_room(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    "where", ["prodmatch.encoders.rows.save_npy", "prodmatch.encoders.cache.allocated_memmap"]
)
def test_no_room_for_a_segment_encodes_without_the_cache(catalog, tmp_path, caplog, monkeypatch, where):
    paths = catalog.image_paths()
    expected = np.array(EmbeddingCache(tmp_path / "ref").get_or_compute(image_encoder(seed=0), paths).vectors)
    monkeypatch.setattr(where, _no_room)
    cache = EmbeddingCache(tmp_path / "cache", memmap_min_bytes=0)  # memory-mapped segments: both paths
    with caplog.at_level(logging.WARNING, logger="prodmatch.encoders"):
        for _ in range(2):
            got = cache.get_or_compute(image_encoder(seed=0), paths)
            np.testing.assert_array_equal(got.vectors, expected)
    assert caplog.text.count("no space left") == 1 and not cache.writable
    folder = tmp_path / "cache"
    assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()]  # nothing half-written
