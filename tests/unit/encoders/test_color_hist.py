"""The foreground colour-histogram encoder: background taken out, unit rows, bad files as NaN rows and counts."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodmatch.encoders.base import Encoder
from prodmatch.encoders.color_hist import ColorHistEncoder, border_colours, colour_histograms
from prodmatch.errors import ConfigError

RED, BLUE, WHITE, GREY = (220, 30, 30), (30, 60, 200), (255, 255, 255), (120, 120, 120)


def _bin(colour: tuple[int, int, int], bins: int = 8) -> int:
    r, g, b = (c * bins // 256 for c in colour)
    return (r * bins + g) * bins + b


def _photo(
    background: tuple[int, int, int], boxes: list[tuple[tuple[int, int, int], tuple[int, ...]]], size=64
):
    """uint8 [S, S, 3]: a plain background with coloured boxes (x0, y0, x1, y1) on it."""
    img = np.empty((size, size, 3), np.uint8)
    img[:] = background
    for colour, (x0, y0, x1, y1) in boxes:
        img[y0:y1, x0:x1] = colour
    return img


def _save(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path)
    return path


def encoder(**kwargs) -> ColorHistEncoder:
    base = dict(image_size=32, batch_size=4, num_workers=0, progress=False)
    return ColorHistEncoder(**{**base, **kwargs})


def test_follows_the_encoder_protocol():
    enc = encoder()
    assert isinstance(enc, Encoder)
    assert (enc.modality, enc.needs_fit, enc.dim) == ("image", False, 512)
    assert enc.fit(["ignored"]) is enc
    assert encoder(bins=4).dim == 64


def test_the_border_colour_is_taken_out_and_the_product_counted():
    # a red product with a blue accent on white: 300 red + 100 blue pixels of 4096
    img = _photo(WHITE, [(RED, (10, 10, 40, 20)), (BLUE, (10, 30, 20, 40))])
    fg = colour_histograms(img[None], bins=8, background="border")[0]
    assert fg.sum() == 400
    assert fg[_bin(RED)] == 300 and fg[_bin(BLUE)] == 100 and fg[_bin(WHITE)] == 0
    everything = colour_histograms(img[None], bins=8, background="none")[0]
    assert everything.sum() == 64 * 64 and everything[_bin(WHITE)] == 64 * 64 - 400
    np.testing.assert_allclose(border_colours(img[None], 8)[0], WHITE)


def test_the_same_product_on_another_background_gives_the_same_row(tmp_path: Path):
    product = [(RED, (12, 12, 44, 30)), (BLUE, (20, 34, 40, 50))]
    on_white = _save(tmp_path / "w.png", _photo(WHITE, product))
    on_grey = _save(tmp_path / "g.png", _photo(GREY, product))
    other = _save(tmp_path / "o.png", _photo(WHITE, [(BLUE, (12, 12, 44, 30)), (RED, (20, 34, 40, 50))]))
    fg = encoder(image_size=64).encode([on_white, on_grey, other]).vectors
    assert fg[0] @ fg[1] == pytest.approx(1.0, abs=1e-6)  # the background does not count
    assert fg[0] @ fg[2] < 0.99  # other shares of the same colours do
    everything = encoder(image_size=64, background="none").encode([on_white, on_grey]).vectors
    assert everything[0] @ everything[1] < 0.5  # the all-pixel histogram is mostly background


def test_a_photo_that_is_all_background_keeps_all_its_pixels():
    blank = _photo(GREY, [])
    row = colour_histograms(blank[None], bins=8, background="border")[0]
    assert row.sum() == 64 * 64 and row[_bin(GREY)] == 64 * 64


def test_rows_are_unit_float32_and_power_shapes_them(tmp_path: Path):
    img = _save(tmp_path / "a.png", _photo(WHITE, [(RED, (0, 8, 32, 40)), (BLUE, (40, 8, 48, 16))]))
    for power in (0.5, 1.0):
        row = encoder(image_size=64, power=power).encode([img]).vectors[0]
        assert row.dtype == np.float32 and np.linalg.norm(row) == pytest.approx(1.0, abs=1e-6)
        shares = np.array([1024, 64], np.float64) / 1088
        expected = shares**power / np.linalg.norm(shares**power)
        np.testing.assert_allclose(row[[_bin(RED), _bin(BLUE)]], expected, rtol=1e-5)


def test_batch_size_and_workers_do_not_change_the_rows(tmp_path: Path):
    rng = np.random.default_rng(0)
    paths = [
        _save(tmp_path / f"{i}.jpg", rng.integers(0, 256, (40 + 5 * i, 50, 3), dtype=np.uint8))
        for i in range(5)
    ]
    one = encoder(batch_size=1).encode(paths).vectors
    np.testing.assert_array_equal(one, encoder(batch_size=4).encode(paths).vectors)
    np.testing.assert_array_equal(one, encoder(batch_size=2, num_workers=2).encode(paths).vectors)
    assert encoder().encode([]).vectors.shape == (0, 512)


def test_unreadable_images_are_nan_rows_and_counted(tmp_path: Path, caplog):
    good = [_save(tmp_path / f"g{i}.png", _photo(WHITE, [(RED, (i, i, 30, 30))])) for i in range(3)]
    whole = tmp_path / "whole.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        whole, quality=90
    )
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(whole.read_bytes()[:900])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"passes an exists check, decodes to nothing")
    paths = [good[0], broken, good[1], truncated, good[2], tmp_path / "gone.jpg"]
    enc = encoder()
    with caplog.at_level(logging.WARNING, logger="prodmatch.encoders"):
        result = enc.encode(paths)
    rows = result.vectors
    nan_rows = np.isnan(rows).all(axis=1)
    assert nan_rows.tolist() == [False, True, False, False, False, True]
    np.testing.assert_allclose(np.linalg.norm(rows[~nan_rows], axis=1), 1.0, atol=1e-6)
    assert result.counts == {"unreadable_image": 2, "truncated_image": 1}
    assert result.examples == {"unreadable_image": str(broken), "truncated_image": str(truncated)}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "2 unreadable image(s)" in lines[0] and str(broken) in lines[0]
    clean = enc.encode(good)
    np.testing.assert_array_equal(rows[[0, 2, 4]], clean.vectors)  # neighbours do not matter
    assert clean.counts == {}  # each call says what it met


def test_cache_key_names_everything_that_fixes_the_rows():
    base = encoder().cache_key()
    assert base.startswith("color_hist|")
    others = [
        encoder(bins=4),
        encoder(image_size=48),
        encoder(background="none"),
        encoder(tolerance=16),
        encoder(power=1.0),
    ]
    keys = [e.cache_key() for e in others]
    assert base not in keys and len(set(keys)) == len(keys)
    # how the rows are computed, not how fast: batch size and workers are not in the key
    assert encoder(batch_size=1, num_workers=2).cache_key() == base
    # without background removal the tolerance fixes nothing
    assert encoder(background="none", tolerance=8).cache_key() == encoder(background="none").cache_key()


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"bins": 1}, "bins"),
        ({"image_size": 4}, "image_size"),
        ({"background": "mode"}, "background"),
        ({"tolerance": 300}, "tolerance"),
        ({"power": 0}, "power"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_config_is_one_clear_error(kwargs, key):
    with pytest.raises(ConfigError, match=f"encoders.color_hist.*{key}"):
        encoder(**kwargs)
