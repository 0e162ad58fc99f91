"""Robust image decoding, image-path safety, torchvision transforms and the DataLoader dataset.

Scraped catalogs hold every kind of image: grayscale, palette with transparency, RGBA, CMYK JPEGs, 16-bit
and float TIFF/PNG, EXIF-rotated phone photos. :func:`load_image` turns each of them into an upright RGB
image, or raises :class:`~prodmatch.errors.ImageError` with one line naming the file.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms import v2

from prodmatch.errors import ConfigError, ImageError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_PIXELS",
    "ImageDataset",
    "build_transform",
    "image_problem",
    "load_image",
    "resolve_image_path",
    "to_rgb",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Far above any product photo (8000 x 8000) yet small enough that one decoded image cannot exhaust memory.
MAX_PIXELS: int = 64_000_000

_WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
# Errors PIL raises for corrupt, truncated or unsupported files.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
)


def resolve_image_path(image_root: Path, img_ref: str) -> Path:
    """Join ``img_ref`` to ``image_root``; refuse empty, absolute and ``..``-escaping refs with ImageError."""
    ref = str(img_ref).strip().replace("\\", "/")  # Windows-style refs occur in scraped data
    if not ref:
        raise ImageError("empty img_ref; give each row a path relative to the image root, or run text-only")
    if ref.startswith("/") or _WINDOWS_DRIVE.match(ref):
        raise ImageError(
            f"img_ref '{img_ref}' is an absolute path; img_ref must be relative to the image root "
            f"({image_root})"
        )
    # Lexical check (no symlink resolution): a root may legitimately hold symlinks to image storage.
    norm = posixpath.normpath(ref)
    if norm == ".." or norm.startswith("../"):
        raise ImageError(
            f"img_ref '{img_ref}' escapes the image root ({image_root}) via '..'; "
            "keep images inside the image root"
        )
    return Path(image_root) / norm


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            f"{path}: image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels} "
            "(decompression-bomb guard); shrink the image or raise max_pixels"
        )


def _unreadable(path: Path, err: BaseException) -> ImageError:
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return ImageError(
        f"{path}: image cannot be read: {reason}; fix or remove the row, or run with data.check_images=decode "
        f"to drop unreadable images at load (counted in the load report)"
    )


def _scale_to_uint8(arr: np.ndarray, bits16: bool) -> np.ndarray:
    """Map 16-bit / 32-bit int / float pixel data to 0..255."""
    is_float = arr.dtype.kind == "f"
    arr = arr.astype(np.float64, copy=False)
    if bits16:
        return np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
    finite = arr[np.isfinite(arr)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if is_float and lo >= 0.0 and hi <= 1.0:
        out = arr * 255.0  # float images in 0..1
    elif lo >= 0.0 and hi <= 255.0:
        out = arr
    elif lo >= 0.0 and hi <= 65535.0:
        out = arr / 257.0  # 16-bit data opened as mode "I"
    else:
        out = (arr - lo) / (hi - lo) * 255.0  # arbitrary range: stretch
    return np.clip(np.rint(np.nan_to_num(out)), 0, 255).astype(np.uint8)


def _composite_on_white(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparent areas become white."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in _ALPHA_MODES or "transparency" in im.info:
        return _composite_on_white(im)
    if mode.startswith("I;16") or mode in ("I", "F"):
        gray = _scale_to_uint8(np.asarray(im), bits16=mode.startswith("I;16"))
        return Image.fromarray(gray, mode="L").convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError as err:  # e.g. LAB/HSV have no direct RGB conversion in PIL
        raise ImageError(
            f"image mode {mode} is not supported ({err}); save the image as RGB JPEG/PNG"
        ) from err


def _exif_upright(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # a corrupt EXIF tag must not cost the pixels; keep the image as stored
        return im.copy()


def load_image(path: Path, size_hint: int | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``path`` into an upright RGB image (first frame of animations).

    ``size_hint``: the smallest side the caller needs; JPEGs are then decoded at a reduced scale
    (``Image.draft``) that still keeps both sides >= ``size_hint``.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            _check_pixels(path, im.size, max_pixels)  # header only: nothing decoded yet
            if size_hint and im.format == "JPEG":
                im.draft("RGB", (int(size_hint), int(size_hint)))
            im.load()  # decode here so corrupt pixel data is reported as such, not as an EXIF problem
            upright = _exif_upright(im)
    except FileNotFoundError as err:
        raise ImageError(
            f"{path}: image file not found; fix img_ref or the image root, or remove the row"
        ) from err
    except _DECODE_ERRORS as err:
        raise _unreadable(path, err) from err
    try:
        return to_rgb(upright)
    except ImageError as err:
        raise ImageError(f"{path}: {err}") from err
    except _DECODE_ERRORS as err:
        raise _unreadable(path, err) from err


def image_problem(path: Path, decode: bool = False, max_pixels: int = MAX_PIXELS) -> str | None:
    """Reason key ("missing_image", "unreadable_image", "image_too_large") or None when the image is usable.

    ``decode=False`` only stats the file; ``decode=True`` also verifies it and decodes it at reduced scale,
    which catches truncated files that a header check misses.
    """
    path = Path(path)
    if not path.is_file():
        return "missing_image"
    if not decode:
        return None
    try:
        with Image.open(path) as im:
            if im.size[0] * im.size[1] > max_pixels:
                return "image_too_large"
            im.verify()
        with Image.open(path) as im:  # verify() leaves the image unusable: reopen to decode
            im.draft("RGB", (64, 64))  # cheap for JPEG, still reads the whole stream
            im.load()
    except Image.DecompressionBombError:
        return "image_too_large"
    except _DECODE_ERRORS:
        return "unreadable_image"
    return None


def build_transform(
    image_size: int,
    train: bool = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> normalised float tensor [3, image_size, image_size].

    eval: resize the shorter side, centre crop; train: random resized crop, horizontal flip, light colour jitter.
    """
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size <= 0:
        raise ConfigError(
            f"image_size must be a positive integer, got {image_size!r}; set e.g. image_size=224"
        )
    if train:
        geometry = [
            v2.RandomResizedCrop(image_size, scale=(0.6, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1),
        ]
    else:
        geometry = [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    # Geometry runs on the PIL image (fast resampling), then one conversion to a float tensor.
    return v2.Compose(
        [
            *geometry,
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )


def _to_float_tensor(im: Image.Image) -> torch.Tensor:
    return v2.functional.to_dtype(v2.functional.to_image(im), torch.float32, scale=True)


class ImageDataset(torch.utils.data.Dataset):
    """Decodes images lazily in ``__getitem__`` so DataLoader workers do the work; picklable."""

    def __init__(
        self,
        paths: Sequence[Path | str],
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        size_hint: int | None = None,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.paths = [str(p) for p in paths]  # plain strings: cheap to pickle into each worker
        self.transform = transform
        self.size_hint = size_hint
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = load_image(Path(self.paths[index]), size_hint=self.size_hint, max_pixels=self.max_pixels)
        if self.transform is None:
            return _to_float_tensor(image)
        return self.transform(image)
