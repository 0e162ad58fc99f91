"""Robust image decoding, image-path safety, torchvision transforms and the DataLoader dataset.

Scraped catalogs hold every kind of image: grayscale, palette with transparency, RGBA, CMYK JPEGs, 16-bit
and float TIFF/PNG, EXIF-rotated phone photos. :func:`load_image` turns each of them into an upright RGB
image, or raises :class:`~prodmatch.errors.ImageError` with one line naming the file. A truncated file (common
in scraped catalogs) can be decoded as far as it goes (``allow_truncated=True``), and :class:`ImageDataset` can
report per item whether an image was truncated or unreadable instead of raising, so that a bad image met during
encoding costs one row, not the run.

torch and torchvision are imported where tensors are made, so the catalog layer (which uses the path and check
helpers here) stays light.
"""

from __future__ import annotations

import functools
import posixpath
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from prodmatch.errors import ConfigError, ImageError

if TYPE_CHECKING:
    import torch

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_OK",
    "IMAGE_TRUNCATED",
    "IMAGE_UNREADABLE",
    "MAX_PIXELS",
    "ResizeCenterCrop",
    "STATUS_REASONS",
    "ImageDataset",
    "build_transform",
    "image_problem",
    "load_image",
    "normalize_batch",
    "read_image",
    "resolve_image_path",
    "to_rgb",
    "to_uint8_tensor",
]

# Per-item status codes of ImageDataset(with_status=True); they travel back from DataLoader workers as a tensor.
IMAGE_OK, IMAGE_TRUNCATED, IMAGE_UNREADABLE = 0, 1, 2
STATUS_REASONS: dict[int, str] = {IMAGE_TRUNCATED: "truncated_image", IMAGE_UNREADABLE: "unreadable_image"}

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
    """Join ``img_ref`` to ``image_root``; refuse empty, absolute and escaping refs with ImageError.

    A ref escapes when it climbs out with ``..`` or when the file it names, symlinks resolved, lies outside the
    resolved image root (a symlink inside the root pointing elsewhere). The joined path is returned unresolved.
    """
    ref = str(img_ref).strip().replace("\\", "/")  # Windows-style refs occur in scraped data
    if not ref:
        raise ImageError("empty img_ref; give each row a path relative to the image root, or run text-only")
    if ref.startswith("/") or _WINDOWS_DRIVE.match(ref):
        raise ImageError(
            f"img_ref '{img_ref}' is an absolute path; img_ref must be relative to the image root "
            f"({image_root})"
        )
    norm = posixpath.normpath(ref)
    if norm == ".." or norm.startswith("../"):
        raise ImageError(
            f"img_ref '{img_ref}' escapes the image root ({image_root}) via '..'; "
            "keep images inside the image root"
        )
    path = Path(image_root) / norm
    real = _real_path(path)
    if not real.is_relative_to(_real_dir(str(image_root))):
        raise ImageError(
            f"img_ref '{img_ref}' is a symlink to {real}, outside the image root ({image_root}); keep "
            "images inside the image root, or set data.image_root to the folder the links lead to"
        )
    return path


@functools.lru_cache(maxsize=1 << 16)
def _real_dir(folder: str) -> Path:
    """A folder with its symlinks resolved, cached: a catalog's images share few folders."""
    return Path(folder).resolve()


def _real_path(path: Path) -> Path:
    """``path`` with its symlinks resolved at the cost of one ``lstat`` (``Path.resolve`` costs one per part)."""
    real = _real_dir(str(path.parent)) / path.name
    return real.resolve() if real.is_symlink() else real


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


_TRUNCATED_LOCK = threading.Lock()


@contextmanager
def _truncated_allowed() -> Iterator[None]:
    """PIL's LOAD_TRUNCATED_IMAGES for one load only (PIL has no per-image switch), then restored."""
    with _TRUNCATED_LOCK:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _is_truncation(err: BaseException) -> bool:
    return isinstance(err, OSError) and "truncated" in str(err)


def _exif_upright(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # a corrupt EXIF tag must not cost the pixels; keep the image as stored
        return im.copy()


def _decode(path: Path, size_hint: int | None, max_pixels: int, truncated_ok: bool) -> Image.Image:
    """Open, guard, draft and decode ``path`` (PIL errors pass through); EXIF orientation applied."""
    with Image.open(path) as im:
        _check_pixels(path, im.size, max_pixels)  # header only: nothing decoded yet
        if size_hint and im.format == "JPEG":
            im.draft("RGB", (int(size_hint), int(size_hint)))
        if truncated_ok:
            with _truncated_allowed():
                im.load()
        else:
            im.load()  # decode here so corrupt pixel data is reported as such, not as an EXIF problem
        return _exif_upright(im)


def read_image(
    path: Path, size_hint: int | None = None, max_pixels: int = MAX_PIXELS, allow_truncated: bool = True
) -> tuple[Image.Image, bool]:
    """Decode ``path`` into an upright RGB image; also say whether the file was truncated.

    A truncated file is decoded as far as it goes (the rest is grey) when ``allow_truncated``; otherwise, and for
    any other unreadable file, :class:`ImageError` names the file. ``size_hint`` as in :func:`load_image`.
    """
    path = Path(path)
    truncated = False
    try:
        try:
            image = _decode(path, size_hint, max_pixels, truncated_ok=False)
        except OSError as err:
            if not (allow_truncated and _is_truncation(err)):
                raise
            image, truncated = _decode(path, size_hint, max_pixels, truncated_ok=True), True
    except FileNotFoundError as err:
        raise ImageError(
            f"{path}: image file not found; fix img_ref or the image root, or remove the row"
        ) from err
    except _DECODE_ERRORS as err:
        raise _unreadable(path, err) from err
    try:
        return to_rgb(image), truncated
    except ImageError as err:
        raise ImageError(f"{path}: {err}") from err
    except _DECODE_ERRORS as err:
        raise _unreadable(path, err) from err


def load_image(
    path: Path, size_hint: int | None = None, max_pixels: int = MAX_PIXELS, allow_truncated: bool = False
) -> Image.Image:
    """Decode ``path`` into an upright RGB image (first frame of animations).

    ``size_hint``: the smallest side the caller needs; JPEGs are then decoded at a reduced scale
    (``Image.draft``) that still keeps both sides >= ``size_hint``. ``allow_truncated``: decode a truncated file
    as far as it goes instead of raising (:func:`read_image` also tells whether it was).
    """
    return read_image(path, size_hint, max_pixels, allow_truncated)[0]


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


class ResizeCenterCrop:
    """Shorter side to ``size``, centre square kept: one PIL resample of the centre box (picklable).

    Same picture as resize-then-crop, at half the cost: only the kept pixels are resampled, and large reductions
    first shrink by an integer factor (``reducing_gap``), which PIL does much faster than a full resample.
    """

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        box = (left, top, left + side, top + side)
        return image.resize((self.size, self.size), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)


def to_uint8_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image -> uint8 RGB tensor [3, H, W] (a channels-first view of one copy of the pixels)."""
    import torch

    rgb = image if image.mode == "RGB" else to_rgb(image)
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)


def build_transform(
    image_size: int,
    train: bool = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    normalize: bool = True,
) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> normalised float tensor [3, image_size, image_size].

    eval: resize the shorter side, centre crop; train: random resized crop, horizontal flip, light colour jitter.
    ``normalize=False`` stops at a uint8 tensor (4x less to send from DataLoader workers); the consumer then
    scales and normalises the whole batch at once (:func:`normalize_batch`).
    """
    import torch
    from torchvision.transforms import v2

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
        geometry = [ResizeCenterCrop(image_size)]
    # Geometry runs on the PIL image (fast resampling), then one conversion to a tensor.
    tail = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]
    return v2.Compose([*geometry, to_uint8_tensor, *(tail if normalize else [])])


def normalize_batch(
    batch: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float32 scaled to [0, 1] and normalised per channel (as ``build_transform`` does)."""
    import torch

    mean_t = torch.tensor(mean, dtype=torch.float32, device=batch.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=batch.device).view(1, -1, 1, 1)
    return batch.float().div_(255.0).sub_(mean_t).div_(std_t)


def _to_float_tensor(im: Image.Image) -> torch.Tensor:
    import torch
    from torchvision.transforms import v2

    return v2.functional.to_dtype(v2.functional.to_image(im), torch.float32, scale=True)


class ImageDataset:
    """Decodes images lazily in ``__getitem__`` so DataLoader workers do the work; picklable.

    A map-style dataset (``__len__`` + ``__getitem__``), which is all DataLoader needs. ``with_status=True``:
    items are ``(tensor, status)`` with a status of :data:`IMAGE_OK`, :data:`IMAGE_TRUNCATED` (decoded as far as
    the file goes) or :data:`IMAGE_UNREADABLE` (the tensor is a blank placeholder of the right shape), so the
    statuses travel back from the workers with the batches and one bad file does not end the loop. Without it, a
    truncated or unreadable image raises :class:`ImageError`.
    """

    def __init__(
        self,
        paths: Sequence[Path | str],
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        size_hint: int | None = None,
        max_pixels: int = MAX_PIXELS,
        with_status: bool = False,
    ) -> None:
        self.paths = [str(p) for p in paths]  # plain strings: cheap to pickle into each worker
        self.transform = transform
        self.size_hint = size_hint
        self.max_pixels = max_pixels
        self.with_status = with_status

    def __len__(self) -> int:
        return len(self.paths)

    def _tensor(self, image: Image.Image) -> torch.Tensor:
        return _to_float_tensor(image) if self.transform is None else self.transform(image)

    def __getitem__(self, index: int) -> torch.Tensor | tuple[torch.Tensor, int]:
        path = Path(self.paths[index])
        if not self.with_status:
            return self._tensor(load_image(path, size_hint=self.size_hint, max_pixels=self.max_pixels))
        try:
            image, truncated = read_image(path, self.size_hint, self.max_pixels, allow_truncated=True)
        except ImageError:
            # Same shape and dtype as a real item, so the batch collates; the consumer discards the row.
            blank = Image.new("RGB", (self.size_hint or 1, self.size_hint or 1), _WHITE)
            return self._tensor(blank), IMAGE_UNREADABLE
        return self._tensor(image), IMAGE_TRUNCATED if truncated else IMAGE_OK
