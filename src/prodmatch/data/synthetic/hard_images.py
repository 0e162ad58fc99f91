"""Image effects of the hard profile (docs/CATALOGS.md, I1-I7), applied by ``drawing.render`` to one card.

``plan`` is the card's entry of :func:`prodmatch.data.synthetic.hard.image_plan`: which effects it gets, its
shop's studio gains, its price, its family's traits and a stream key. Every effect draws from its own generator,
``plan["key"] + [effect]``, so what one effect draws never depends on another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from prodmatch.data.synthetic.sampling import pick
from prodmatch.data.synthetic.silhouettes import draw_object

_STREAMS = {"cast": 1, "lighting": 2, "turned": 3, "stickers": 4}
STOCK_SIZE = 480  # long side of a family's stock photo (capped by the scale's image size)
STOCK_FILL = 0.85  # the product's share of the stock photo's frame
# overlays a shop pastes on a photo: (fill, text colour)
TAG_COLOURS = (((255, 214, 0), (20, 20, 20)), ((220, 30, 40), (255, 255, 255)))
BADGE_COLOURS = ((220, 30, 40), (245, 130, 20), (40, 160, 70), (30, 110, 210))
BADGE_TEXTS = ("HIT", "NEW", "SALE", "TOP", "-15%", "-20%", "-30%")


def _rng(plan: dict[str, Any], effect: str) -> np.random.Generator:
    return np.random.default_rng([*plan["key"], _STREAMS[effect]])


def turn(obj: Image.Image, plan: dict[str, Any]) -> Image.Image:
    """I5: the product seen slightly from the side: foreshortened (width x 0.7-0.9) and rotated 4-12 degrees."""
    if not plan["turned"]:
        return obj
    rng = _rng(plan, "turned")
    width = max(8, int(obj.width * rng.uniform(0.7, 0.9)))
    angle = float(rng.uniform(4.0, 12.0)) * (1 if rng.random() < 0.5 else -1)
    obj = obj.resize((width, obj.height), Image.Resampling.BILINEAR)
    return obj.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)


def _gains(plan: dict[str, Any]) -> np.ndarray:
    """I1 x I2: the shop's studio gains times this photo's white-balance error."""
    gains = np.asarray(plan["gains"] if plan["studio"] else (1.0, 1.0, 1.0), np.float32)
    if plan["cast"]:
        rng = _rng(plan, "cast")
        t, u = rng.uniform(-1.0, 1.0, 2)
        gains = gains * np.array([1 + 0.18 * t, 1 + 0.08 * u, 1 - 0.18 * t], np.float32)
    return gains


def colour(canvas: Image.Image, plan: dict[str, Any]) -> Image.Image:
    """I1-I3 on an RGBA photo: white balance (studio and cast), then exposure, gamma and contrast."""
    if not (plan["studio"] or plan["cast"] or plan["lighting"]):
        return canvas
    arr = np.asarray(canvas, dtype=np.float32)
    rgb = arr[..., :3] / 255.0 * _gains(plan)
    if plan["lighting"]:
        rng = _rng(plan, "lighting")
        exposure, gamma, contrast = (
            rng.uniform(0.8, 1.15),
            np.exp(rng.uniform(np.log(0.7), np.log(1.45))),
            rng.uniform(0.75, 1.15),
        )
        rgb = np.clip(rgb * exposure, 0.0, 1.0) ** gamma
        rgb = (rgb - 0.5) * contrast + 0.5
    arr[..., :3] = np.clip(rgb, 0.0, 1.0) * 255.0
    return Image.fromarray(np.rint(arr).astype(np.uint8), "RGBA")


def mirror(canvas: Image.Image, plan: dict[str, Any]) -> Image.Image:
    """I4: the whole photo flipped left-right."""
    return canvas.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if plan["mirrored"] else canvas


def stickers(canvas: Image.Image, plan: dict[str, Any], font: Callable[[int], Any]) -> None:
    """I6: 1-3 price tags and badges pasted anywhere on the photo (over the product too), in place."""
    if not plan["stickers"]:
        return
    rng = _rng(plan, "stickers")
    w, h = canvas.size
    d = ImageDraw.Draw(canvas)
    for i in range(int(rng.integers(1, 4))):
        side = max(12, int(min(w, h) * rng.uniform(0.12, 0.28)))
        tag = i == 0 and rng.random() < 0.6
        box_w, box_h = (int(side * 1.9), int(side * 0.7)) if tag else (side, side)
        x, y = int(rng.integers(0, max(1, w - box_w))), int(rng.integers(0, max(1, h - box_h)))
        if tag:
            fill, ink = TAG_COLOURS[int(rng.integers(len(TAG_COLOURS)))]
            text = f"{plan['price']:,} RUB".replace(",", " ")
            d.rectangle([x, y, x + box_w, y + box_h], fill=(*fill, 255))
        else:
            fill, ink = pick(rng, BADGE_COLOURS), (255, 255, 255)
            text = pick(rng, BADGE_TEXTS)
            d.ellipse([x, y, x + box_w, y + box_h], fill=(*fill, 255))
        f = font(max(8, box_h // 3))
        x0, y0, x1, y1 = d.textbbox((0, 0), text, font=f)
        d.text(
            (x + (box_w - (x1 - x0)) / 2 - x0, y + (box_h - (y1 - y0)) / 2 - y0),
            text,
            fill=(*ink, 255),
            font=f,
        )


def stock_canvas(plan: dict[str, Any], target: str, size_cap: int, transparent: bool) -> Image.Image:
    """I7: the family's stock photo, an RGBA square: its first model centred on white (or transparent). It depends on
    the family alone, so every card that uses it shows the same picture."""
    side = min(STOCK_SIZE, size_cap)
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0) if transparent else (255, 255, 255, 255))
    obj = draw_object(
        target, plan["stock_traits"], plan["stock_aspect"], STOCK_FILL * side, STOCK_FILL * side
    )
    canvas.alpha_composite(obj, ((side - obj.width) // 2, (side - obj.height) // 2))
    return canvas
