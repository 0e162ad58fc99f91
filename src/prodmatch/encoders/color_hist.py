"""Hand-crafted image baseline: the foreground's joint RGB colour histogram, no training at all.

Each image is decoded once at a small size (the whole picture, not a centre crop: a histogram needs no
alignment, and a crop would cut off parts of the product), every pixel's colour is quantised to ``bins`` levels
per channel (``bins**3`` joint bins), and the background is taken out: the **border colour** is the mean colour
of the image's outer ring of pixels that fall in the ring's most common joint bin (product photos are framed by
their background), and every pixel within ``tolerance`` of it (largest channel difference, 0..255; the default
is one bin's width) is dropped. What is left, the product's frame and accent colours, is counted. An image whose
pixels are all background (a blank photo) keeps the histogram of all its pixels, so no row is all-zero.
``background="none"`` counts every pixel (the all-pixel histogram).

Rows are the pixel shares raised to ``power`` and L2-normalised: with the default 0.5 the cosine of two rows is
the Bhattacharyya coefficient of the two colour distributions (Hellinger), which lets a colour present in small
amounts (an accent) count, instead of the largest area (the frame) deciding alone; ``power=1`` is the plain
histogram's cosine.

Decoding goes through the project's robust loader (:class:`prodmatch.data.images.ImageDataset`, in DataLoader
workers): an image that cannot be read gives a NaN row and a count in the
:class:`~prodmatch.encoders.base.EncodeResult`, a truncated one is
counted as a warning, as for the ResNet encoder. The histograms of a batch are one ``np.bincount``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from prodmatch.data.images import IMAGE_UNREADABLE, ImageDataset, to_uint8_tensor
from prodmatch.encoders.base import IMAGE_MODALITY, EncodeResult
from prodmatch.encoders.image_embedder import image_result
from prodmatch.errors import ConfigError
from prodmatch.utils.vectors import l2_normalize

__all__ = ["BACKGROUNDS", "ColorHistEncoder", "border_colours", "colour_histograms"]


BACKGROUNDS = ("border", "none")
_VERSION = 1  # bump when the vectors of the same config change


class _Thumbnail:
    """The whole image resampled to ``size`` x ``size`` as a uint8 tensor [3, S, S] (picklable for workers)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: Image.Image):  # noqa: ANN204 - a torch.Tensor; torch is imported lazily
        small = image.resize((self.size, self.size), Image.Resampling.BILINEAR, reducing_gap=3.0)
        return to_uint8_tensor(small)


def _quantise(pixels: np.ndarray, bins: int) -> np.ndarray:
    """Joint colour bin of each pixel: uint8 [..., 3] -> int64 [...] in [0, bins**3)."""
    q = (pixels.astype(np.int64) * bins) >> 8  # 0..255 -> 0..bins-1
    return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]


def border_colours(images: np.ndarray, bins: int) -> np.ndarray:
    """float32 [B, 3]: per image, the mean colour of its outer ring's pixels that fall in the ring's most common
    joint bin. ``images``: uint8 [B, S, S, 3]."""
    ring = np.concatenate(
        [images[:, 0], images[:, -1], images[:, 1:-1, 0], images[:, 1:-1, -1]], axis=1
    )  # [B, P, 3]
    n_images = ring.shape[0]
    codes = _quantise(ring, bins)
    offsets = np.arange(n_images)[:, None] * bins**3
    counts = np.bincount((codes + offsets).ravel(), minlength=n_images * bins**3).reshape(n_images, -1)
    mode = counts.argmax(axis=1)
    in_mode = codes == mode[:, None]
    sums = np.einsum("bp,bpc->bc", in_mode.astype(np.float32), ring.astype(np.float32))
    return sums / np.maximum(in_mode.sum(axis=1, keepdims=True), 1).astype(np.float32)


def colour_histograms(
    images: np.ndarray, bins: int = 8, background: str = "border", tolerance: int = 32
) -> np.ndarray:
    """float32 [B, bins**3] pixel counts of each image's foreground (see the module docstring), not normalised.

    ``images``: uint8 [B, S, S, 3].
    """
    n_images = images.shape[0]
    codes = _quantise(images, bins).reshape(n_images, -1)
    weights = np.ones(codes.shape, dtype=np.float32)
    if background == "border":
        border = border_colours(images, bins).round().astype(np.int16)
        diff = np.abs(images.astype(np.int16) - border[:, None, None, :]).max(axis=-1)
        foreground = (diff > tolerance).reshape(n_images, -1)
        # a photo that is all background keeps all its pixels rather than an all-zero row
        foreground[~foreground.any(axis=1)] = True
        weights = foreground.astype(np.float32)
    offsets = np.arange(n_images)[:, None] * bins**3
    flat = np.bincount((codes + offsets).ravel(), weights=weights.ravel(), minlength=n_images * bins**3)
    return flat.reshape(n_images, bins**3).astype(np.float32)


class ColorHistEncoder:
    """Foreground RGB colour histograms of image files, L2-normalised (module docstring); nothing to train."""

    modality = IMAGE_MODALITY
    needs_fit = False

    def __init__(
        self,
        bins: int = 8,
        image_size: int = 64,
        background: str = "border",
        tolerance: int = 32,
        power: float = 0.5,
        batch_size: int = 256,
        num_workers: int = 2,
        progress: bool = True,
    ) -> None:
        if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 32:
            raise ConfigError(f"encoders.color_hist.bins={bins!r}; use an integer from 2 to 32 (e.g. 8)")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
            raise ConfigError(f"encoders.color_hist.image_size={image_size!r}; use an integer >= 8 (e.g. 64)")
        if background not in BACKGROUNDS:
            raise ConfigError(
                f"encoders.color_hist.background={background!r}; use one of {', '.join(BACKGROUNDS)}"
            )
        if isinstance(tolerance, bool) or not isinstance(tolerance, int) or not 0 <= tolerance <= 255:
            raise ConfigError(f"encoders.color_hist.tolerance={tolerance!r}; use an integer from 0 to 255")
        if isinstance(power, bool) or not isinstance(power, (int, float)) or not 0 < power <= 1:
            raise ConfigError(f"encoders.color_hist.power={power!r}; use a number in (0, 1] (0.5: Hellinger)")
        if batch_size <= 0 or num_workers < 0:
            raise ConfigError(
                f"encoders.color_hist: batch_size={batch_size}, num_workers={num_workers}; "
                "batch_size must be >= 1 and num_workers >= 0"
            )
        self.bins = bins
        self.image_size = image_size
        self.background = background
        self.tolerance = tolerance
        self.power = float(power)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.progress = progress

    @property
    def dim(self) -> int:
        return self.bins**3

    def fit(self, texts: Sequence[str]) -> ColorHistEncoder:
        """Nothing to learn from a corpus."""
        return self

    def cache_key(self) -> str | None:
        tol = f"|tolerance={self.tolerance}" if self.background == "border" else ""
        return (
            f"color_hist|v{_VERSION}|bins={self.bins}|image_size={self.image_size}"
            f"|background={self.background}{tol}|power={self.power:g}"
        )

    def encode(self, inputs: Sequence[str | Path]) -> EncodeResult:
        """float32 [N, bins**3], L2-normalised, in input order; NaN rows for images that cannot be read."""
        from torch.utils.data import DataLoader
        from tqdm.auto import tqdm

        paths = [str(p) for p in inputs]
        out = np.empty((len(paths), self.dim), dtype=np.float32)
        statuses = np.zeros(len(paths), dtype=np.int8)
        dataset = ImageDataset(
            paths, _Thumbnail(self.image_size), size_hint=self.image_size, with_status=True
        )
        loader = DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)
        start = 0
        for images, status in tqdm(loader, desc="colour histograms", unit="batch", disable=not self.progress):
            pixels = images.permute(0, 2, 3, 1).numpy()  # [B, S, S, 3] uint8
            counts = colour_histograms(pixels, self.bins, self.background, self.tolerance)
            rows = np.power(counts / counts.sum(axis=1, keepdims=True), self.power, dtype=np.float32)
            rows[status.numpy() == IMAGE_UNREADABLE] = np.nan
            out[start : start + len(rows)] = rows
            statuses[start : start + len(rows)] = status.numpy()
            start += len(rows)
        return image_result(l2_normalize(out, inplace=True), paths, statuses, what="colour histograms")
