"""Augmentation presets (``augment=light|strong``, ``conf/augment/``): what a training view of a card goes through.

One class, :class:`Augment`, whose arguments are the effects; the presets are two settings of it. In order:

1. **reframe** (strong): one affine warp of the picture that zooms out (the object smaller than the frame, by a
   side factor up to ``zoom_out``), turns it (up to ``rotate`` degrees) and shifts it (up to ``shift`` of the
   side); the uncovered frame takes the picture's background colour (the median of its border pixels), so it
   looks like a wider shot, not a black border;
2. **background fill** (strong, probability ``background``): the pixels within ``background_tolerance`` of that
   background colour, when the border is that uniform colour, get one random colour;
3. **zoom in**: a random crop of ``crop_scale`` of the area and ``crop_ratio`` aspect, resized to the training
   size (torchvision's ``RandomResizedCrop``);
4. horizontal **flip** (probability ``flip``);
5. **colour jitter** of ``brightness`` / ``contrast`` / ``saturation`` / ``hue`` (torchvision's ``ColorJitter``);
6. **greyscale** (probability ``grayscale``).

Every random draw comes from torch's RNG, so the caller's seeding (per epoch, row and view) makes a view
repeatable. Inputs are PIL images or uint8 ``[3, H, W]`` tensors (the decoded crops); outputs are float
tensors normalised like the eval crops. ``light`` on a PIL image is exactly the transform training used before
the presets (crop of 60-100 %, flip, jitter of 0.1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from prodmatch.data.images import IMAGENET_MEAN, IMAGENET_STD, ResizeCenterCrop, to_uint8_tensor
from prodmatch.errors import ConfigError

Transform = Callable[[Any], torch.Tensor]


def border_colour(image: torch.Tensor) -> torch.Tensor:
    """Median colour (float [3]) of the outermost pixels of a uint8 ``[3, H, W]`` image."""
    border = torch.cat([image[:, 0, :], image[:, -1, :], image[:, :, 0], image[:, :, -1]], dim=1)
    return border.float().median(dim=1).values


def as_uint8_tensor(image: Any) -> torch.Tensor:
    """A PIL image or a uint8 tensor, as a uint8 ``[3, H, W]`` tensor."""
    return to_uint8_tensor(image) if isinstance(image, Image.Image) else image


class Reframe:
    """Zoom out, rotate and shift in one affine warp; the uncovered frame takes the border colour."""

    def __init__(self, zoom_out: float, zoom_out_p: float, rotate: float, shift: float) -> None:
        self.zoom_out = zoom_out
        self.zoom_out_p = zoom_out_p
        self.rotate = rotate
        self.shift = shift

    def __call__(self, image: Any) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        image = as_uint8_tensor(image)
        draws = torch.rand(5)
        factor = 1.0 + float(draws[1]) * (self.zoom_out - 1.0) if float(draws[0]) < self.zoom_out_p else 1.0
        angle = (float(draws[2]) * 2 - 1) * self.rotate
        side = image.shape[-1]
        translate = [(float(d) * 2 - 1) * self.shift * side for d in draws[3:5]]
        if factor == 1.0 and angle == 0.0 and translate == [0.0, 0.0]:
            return image
        fill = border_colour(image).tolist()
        return F.affine(
            image,
            angle=angle,
            translate=translate,
            scale=1.0 / factor,
            shear=[0.0, 0.0],
            interpolation=InterpolationMode.BILINEAR,
            fill=fill,
        )


class BackgroundFill:
    """With probability ``p``, replace the background (pixels near the border colour) by one random colour.

    Only where the border is a background: at least ``uniform`` of the border pixels lie within ``tolerance`` (per
    channel, 0-255) of its median colour; a scene or a busy backdrop is left as it is.
    """

    def __init__(self, p: float, tolerance: float = 24.0, uniform: float = 0.8) -> None:
        self.p = p
        self.tolerance = tolerance
        self.uniform = uniform

    def __call__(self, image: Any) -> torch.Tensor:
        image = as_uint8_tensor(image)
        draws = torch.rand(4)
        if float(draws[0]) >= self.p:
            return image
        colour = border_colour(image)
        border = torch.cat([image[:, 0, :], image[:, -1, :], image[:, :, 0], image[:, :, -1]], dim=1)
        if ((border.float() - colour[:, None]).abs().amax(0) <= self.tolerance).float().mean() < self.uniform:
            return image
        near = (image.float() - colour[:, None, None]).abs().amax(0) <= self.tolerance
        fill = (draws[1:] * 255).round().to(torch.uint8)
        return torch.where(near[None], fill[:, None, None], image)


def _pair(value: Sequence[float], key: str) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not 0.0 < low <= high:
        raise ConfigError(f"augment.{key}={list(value)} must be two numbers 0 < low <= high; e.g. [0.6, 1.0]")
    return low, high


def _probability(value: float, key: str) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"augment.{key}={value} must be a probability in [0, 1]")
    return float(value)


class Augment:
    """An augmentation preset; :meth:`transform` gives the training transform at an image size (module doc)."""

    def __init__(
        self,
        crop_scale: Sequence[float] = (0.6, 1.0),
        crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip: float = 0.5,
        zoom_out: float = 1.0,
        zoom_out_p: float = 0.0,
        rotate: float = 0.0,
        shift: float = 0.0,
        background: float = 0.0,
        background_tolerance: float = 24.0,
        brightness: float = 0.1,
        contrast: float = 0.1,
        saturation: float = 0.1,
        hue: float = 0.0,
        grayscale: float = 0.0,
    ) -> None:
        self.crop_scale = _pair(crop_scale, "crop_scale")
        self.crop_ratio = _pair(crop_ratio, "crop_ratio")
        if self.crop_scale[1] > 1.0:
            raise ConfigError(f"augment.crop_scale={list(crop_scale)} must stay within (0, 1]")
        if float(zoom_out) < 1.0:
            raise ConfigError(f"augment.zoom_out={zoom_out} is a side factor >= 1 (1: no zoom out); e.g. 2.0")
        if not 0.0 <= float(shift) < 0.5 or float(rotate) < 0:
            raise ConfigError(f"augment.shift={shift} must be in [0, 0.5) and augment.rotate={rotate} >= 0")
        self.flip = _probability(flip, "flip")
        self.zoom_out = float(zoom_out)
        self.zoom_out_p = _probability(zoom_out_p, "zoom_out_p")
        self.rotate = float(rotate)
        self.shift = float(shift)
        self.background = _probability(background, "background")
        self.background_tolerance = float(background_tolerance)
        self.jitter = {
            "brightness": float(brightness),
            "contrast": float(contrast),
            "saturation": float(saturation),
            "hue": float(hue),
        }
        self.grayscale = _probability(grayscale, "grayscale")

    @property
    def reframes(self) -> bool:
        return (self.zoom_out > 1.0 and self.zoom_out_p > 0) or self.rotate > 0 or self.shift > 0

    def transform(self, image_size: int) -> Transform:
        """PIL image or uint8 ``[3, H, W]`` tensor -> normalised float ``[3, image_size, image_size]``, augmented."""
        from torchvision.transforms import v2

        steps: list[Callable] = []
        if self.reframes:
            steps.append(Reframe(self.zoom_out, self.zoom_out_p, self.rotate, self.shift))
        if self.background > 0:
            steps.append(BackgroundFill(self.background, self.background_tolerance))
        steps.append(
            v2.RandomResizedCrop(image_size, scale=self.crop_scale, ratio=self.crop_ratio, antialias=True)
        )
        if self.flip > 0:
            steps.append(v2.RandomHorizontalFlip(self.flip))
        if any(self.jitter.values()):
            steps.append(v2.ColorJitter(**self.jitter))
        if self.grayscale > 0:
            steps.append(v2.RandomGrayscale(self.grayscale))
        return v2.Compose([*steps, as_uint8_tensor, *_normalise()])

    def __repr__(self) -> str:
        return f"Augment({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


def _normalise() -> list[Callable]:
    from torchvision.transforms import v2

    return [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD)),
    ]


class EvalTransform:
    """The unaugmented view: a PIL image's centre crop, or a decoded crop resized, to ``image_size``, normalised."""

    def __init__(self, image_size: int) -> None:
        from torchvision.transforms import v2

        self.image_size = image_size
        self.crop = ResizeCenterCrop(image_size)
        self.resize = v2.Resize((image_size, image_size), antialias=True)
        self.normalise = v2.Compose(_normalise())

    def __call__(self, image: Any) -> torch.Tensor:
        if isinstance(image, Image.Image):
            image = to_uint8_tensor(self.crop(image))
        elif image.shape[-1] != self.image_size or image.shape[-2] != self.image_size:
            image = self.resize(image)
        return self.normalise(image)
