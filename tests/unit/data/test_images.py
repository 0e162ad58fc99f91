"""Image decoding for every mode scraped catalogs contain, path safety, guards, transforms and the dataset."""

from __future__ import annotations

import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, features

from prodmatch.data.images import (
    IMAGE_OK,
    IMAGE_TRUNCATED,
    IMAGE_UNREADABLE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MAX_PIXELS,
    ImageDataset,
    build_transform,
    image_problem,
    load_image,
    normalize_batch,
    read_image,
    resolve_image_path,
)
from prodmatch.errors import ConfigError, ImageError


def _save(im: Image.Image, path: Path, **kwargs) -> Path:
    im.save(path, **kwargs)
    return path


def _pixel(path: Path) -> tuple[int, int, int]:
    im = load_image(path)
    assert im.mode == "RGB"
    return im.getpixel((0, 0))


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims a huge size but holds no pixel data (a decompression-bomb stand-in)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


# --------------------------------------------------------------------------- modes


def test_grayscale_l(tmp_path: Path) -> None:
    assert _pixel(_save(Image.new("L", (4, 3), 100), tmp_path / "l.png")) == (100, 100, 100)


def test_palette_without_transparency(tmp_path: Path) -> None:
    im = Image.new("RGB", (4, 4), (200, 10, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    path = _save(im, tmp_path / "p.png")
    assert Image.open(path).mode == "P"
    assert _pixel(path) == (200, 10, 30)


def test_palette_with_transparency_becomes_white(tmp_path: Path) -> None:
    im = Image.new("P", (4, 4), 0)
    im.putpalette([10, 20, 30, 200, 0, 0] + [0] * 762)
    im.putpixel((1, 1), 1)
    path = _save(im, tmp_path / "pt.png", transparency=0)
    assert "transparency" in Image.open(path).info
    out = load_image(path)
    assert out.getpixel((0, 0)) == (255, 255, 255)  # transparent index -> white
    assert out.getpixel((1, 1)) == (200, 0, 0)


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    im = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    im.putpixel((1, 1), (0, 0, 255, 255))
    im.putpixel((2, 2), (0, 0, 0, 128))
    out = load_image(_save(im, tmp_path / "rgba.png"))
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 1)) == (0, 0, 255)
    assert all(120 <= v <= 135 for v in out.getpixel((2, 2)))  # half-transparent black on white -> grey


def test_la_composited_on_white(tmp_path: Path) -> None:
    im = Image.new("LA", (4, 4), (0, 0))
    im.putpixel((1, 1), (50, 255))
    out = load_image(_save(im, tmp_path / "la.png"))
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 1)) == (50, 50, 50)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = _save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    r, g, b = _pixel(path)
    assert r > 200 and g < 60 and b < 60  # pure red


def test_16bit_png(tmp_path: Path) -> None:
    arr = np.full((4, 4), 65535, dtype=np.uint16)
    arr[0, 0] = 32896  # 128 * 257
    path = _save(Image.fromarray(arr), tmp_path / "i16.png")
    assert Image.open(path).mode in ("I;16", "I")
    out = load_image(path)
    assert out.getpixel((0, 0)) == (128, 128, 128)
    assert out.getpixel((1, 1)) == (255, 255, 255)


def test_float_tiff(tmp_path: Path) -> None:
    arr = np.full((4, 4), 1.0, dtype=np.float32)
    arr[0, 0] = 0.5
    path = _save(Image.fromarray(arr, mode="F"), tmp_path / "f.tiff")
    assert Image.open(path).mode == "F"
    out = load_image(path)
    assert out.getpixel((0, 0)) == (128, 128, 128)
    assert out.getpixel((1, 1)) == (255, 255, 255)


def test_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (6, 6), c) for c in ((255, 0, 0), (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    r, g, b = _pixel(path)
    assert r > 200 and g < 50


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WEBP")
def test_webp(tmp_path: Path) -> None:
    r, g, b = _pixel(_save(Image.new("RGB", (8, 8), (0, 0, 250)), tmp_path / "x.webp", lossless=True))
    assert (r, g, b) == (0, 0, 250)


def test_rgb_png_roundtrip(tmp_path: Path) -> None:
    assert _pixel(_save(Image.new("RGB", (3, 3), (1, 2, 3)), tmp_path / "x.png")) == (1, 2, 3)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = _save(Image.new("RGB", (40, 20), (0, 128, 0)), tmp_path / "rot.jpg", exif=exif)
    assert Image.open(path).size == (40, 20)
    assert load_image(path).size == (20, 40)


# --------------------------------------------------------------------------- guards and errors


def test_pixel_guard_refuses_before_decoding(tmp_path: Path) -> None:
    path = _png_header_only(tmp_path / "bomb.png", 9000, 9000)  # 81 Mpx > MAX_PIXELS, no pixel data
    assert MAX_PIXELS < 9000 * 9000
    with pytest.raises(ImageError, match=r"bomb\.png.*81000000 pixels, over the limit"):
        load_image(path)
    assert image_problem(path, decode=True) == "image_too_large"


def test_pixel_guard_custom_limit(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (100, 100)), tmp_path / "big.png")
    with pytest.raises(ImageError, match="big.png"):
        load_image(path, max_pixels=1000)
    assert load_image(path, max_pixels=10_000).size == (100, 100)


def test_pil_decompression_bomb_error_maps_to_image_error(tmp_path: Path, monkeypatch) -> None:
    path = _save(Image.new("RGB", (100, 100)), tmp_path / "pilbomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL refuses > 2x this at open()
    with pytest.raises(ImageError, match="pilbomb.png"):
        load_image(path, max_pixels=10**9)


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(ImageError, match=r"bad\.jpg: image cannot be read: .*fix or remove the row"):
        load_image(bad)
    with pytest.raises(ImageError, match="nope.jpg.*not found"):
        load_image(tmp_path / "nope.jpg")
    assert image_problem(bad) is None  # "exists" only stats
    assert image_problem(bad, decode=True) == "unreadable_image"
    assert image_problem(tmp_path / "nope.jpg") == "missing_image"
    assert image_problem(tmp_path) == "missing_image"  # a directory is not an image


def test_truncated_jpeg_found_by_decode_check(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    good = _save(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), tmp_path / "g.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:600])
    assert image_problem(good, decode=True) is None
    assert image_problem(cut, decode=True) == "unreadable_image"
    with pytest.raises(ImageError, match="cut.jpg"):
        load_image(cut)


def _cut_jpeg(tmp_path: Path, keep: int = 1500) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    good = _save(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), tmp_path / "g.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:keep])
    return good, cut


def test_truncated_jpeg_decodes_what_is_there_when_allowed(tmp_path: Path) -> None:
    good, cut = _cut_jpeg(tmp_path)
    image, truncated = read_image(cut)
    assert truncated and image.mode == "RGB" and image.size == (64, 64)
    # The rows that are in the file decode as in the whole file.
    top = np.asarray(image)[:8].astype(int)
    np.testing.assert_array_equal(top, np.asarray(load_image(good))[:8].astype(int))
    assert load_image(cut, allow_truncated=True).size == (64, 64)
    assert read_image(good) == (load_image(good), False)
    with pytest.raises(ImageError, match="cut.jpg"):
        read_image(cut, allow_truncated=False)


def test_truncated_load_does_not_change_pil_globally(tmp_path: Path) -> None:
    _, cut = _cut_jpeg(tmp_path)
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    read_image(cut)
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    with pytest.raises(ImageError):
        load_image(cut)  # the default stays strict after a lenient load


def test_image_dataset_reports_status_instead_of_raising(tmp_path: Path) -> None:
    good, cut = _cut_jpeg(tmp_path)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    ds = ImageDataset([good, cut, bad], build_transform(16, normalize=False), size_hint=16, with_status=True)
    items = [ds[i] for i in range(3)]
    assert [status for _, status in items] == [IMAGE_OK, IMAGE_TRUNCATED, IMAGE_UNREADABLE]
    assert all(t.shape == (3, 16, 16) and t.dtype == torch.uint8 for t, _ in items)
    images, statuses = next(iter(torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1)))
    assert images.shape == (3, 3, 16, 16) and statuses.tolist() == [0, 1, 2]
    with pytest.raises(ImageError, match="bad.jpg"):
        ImageDataset([bad], build_transform(16))[0]  # without statuses a bad file still raises


def test_normalize_batch_matches_the_float_transform() -> None:
    rng = np.random.default_rng(2)
    image = Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    as_uint8 = build_transform(24, normalize=False)(image)
    expected = build_transform(24)(image)
    assert torch.allclose(normalize_batch(as_uint8[None])[0], expected, atol=1e-5)


# --------------------------------------------------------------------------- JPEG draft


def test_jpeg_draft_decodes_smaller_but_not_below_hint(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (800, 600), (10, 20, 30)), tmp_path / "big.jpg")
    assert load_image(path).size == (800, 600)
    small = load_image(path, size_hint=100)
    assert small.size == (200, 150)  # 1/4 scale; 1/8 would give 75 < 100
    assert min(small.size) >= 100
    png = _save(Image.new("RGB", (800, 600)), tmp_path / "big.png")
    assert load_image(png, size_hint=100).size == (800, 600)  # draft is JPEG-only


# --------------------------------------------------------------------------- paths


def test_resolve_image_path(tmp_path: Path) -> None:
    assert resolve_image_path(tmp_path, "images/a/b.jpg") == tmp_path / "images" / "a" / "b.jpg"
    assert resolve_image_path(tmp_path, " images\\a\\b.jpg ") == tmp_path / "images" / "a" / "b.jpg"
    assert resolve_image_path(tmp_path, "images/../x.jpg") == tmp_path / "x.jpg"  # stays inside


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("../x.jpg", "escapes the image root"),
        ("images/../../x.jpg", "escapes the image root"),
        ("..", "escapes the image root"),
        ("/etc/passwd", "absolute path"),
        ("C:\\images\\x.jpg", "absolute path"),
        ("", "empty img_ref"),
        ("   ", "empty img_ref"),
    ],
)
def test_resolve_image_path_refuses(tmp_path: Path, ref: str, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        resolve_image_path(tmp_path, ref)


def test_a_symlink_may_not_lead_out_of_the_image_root(tmp_path: Path) -> None:
    """The path text stays inside, the file it names does not: refused like a '..' ref."""
    root, outside = tmp_path / "root", tmp_path / "secret"
    (root / "images").mkdir(parents=True)
    outside.mkdir()
    Image.new("RGB", (4, 4)).save(outside / "x.jpg")
    (root / "images" / "file.jpg").symlink_to(outside / "x.jpg")
    (root / "images" / "folder").symlink_to(outside, target_is_directory=True)
    for ref in ("images/file.jpg", "images/folder/x.jpg"):
        with pytest.raises(ImageError, match="outside the image root") as info:
            resolve_image_path(root, ref)
        assert "data.image_root" in str(info.value)


def test_symlinks_that_stay_inside_the_image_root_are_kept(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    (storage / "a").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(storage / "a" / "x.jpg")
    (storage / "same.jpg").symlink_to(storage / "a" / "x.jpg")
    (storage / "b").symlink_to(storage / "a", target_is_directory=True)
    root = tmp_path / "root"
    root.symlink_to(storage, target_is_directory=True)  # the root itself may be a link to the storage
    for ref in ("a/x.jpg", "same.jpg", "b/x.jpg"):
        assert resolve_image_path(root, ref) == root / ref  # returned as joined, not resolved


# --------------------------------------------------------------------------- transforms and dataset


def test_eval_transform_shape_and_normalisation() -> None:
    transform = build_transform(32)
    out = transform(Image.new("RGB", (80, 40), (255, 255, 255)))
    assert out.shape == (3, 32, 32)
    assert out.dtype == torch.float32
    expected = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out[:, 0, 0], expected, atol=1e-5)


def test_train_transform_is_random_but_shaped() -> None:
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8))
    transform = build_transform(24, train=True)
    torch.manual_seed(0)
    a, b = transform(image), transform(image)
    assert a.shape == b.shape == (3, 24, 24)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("size", [0, -3, 2.5, "224", True])
def test_build_transform_rejects_bad_size(size) -> None:
    with pytest.raises(ConfigError, match="image_size"):
        build_transform(size)


def test_image_dataset_decodes_lazily_and_pickles(tmp_path: Path) -> None:
    paths = [
        _save(Image.new("L", (30, 20), 0), tmp_path / "a.png"),
        _save(Image.new("RGBA", (20, 30), (0, 0, 0, 0)), tmp_path / "b.png"),
    ]
    ds = ImageDataset(paths, transform=build_transform(16), size_hint=16)
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone) == 2
    assert clone[0].shape == (3, 16, 16)
    assert torch.allclose(clone[1], ds[1])
    raw = ImageDataset(paths)[1]
    assert raw.shape == (3, 30, 20) and float(raw.min()) == 1.0  # transparent -> white, scaled to [0, 1]
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=0)
    assert next(iter(loader)).shape == (2, 3, 16, 16)
