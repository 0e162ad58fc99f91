"""Photographing a silhouette as a shop does (size, background, placement, marks, noise) and saving it."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont

from prodmatch.data.synthetic import hard_images
from prodmatch.data.synthetic.sampling import pick
from prodmatch.data.synthetic.silhouettes import draw_object
from prodmatch.data.synthetic.tables import ACCENTS, FRAMES


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _background(rng: np.random.Generator, kind: str, w: int, h: int) -> Image.Image:
    if kind == "transparent":
        return Image.new("RGBA", (w, h), (0, 0, 0, 0))
    if kind == "white":
        return Image.new("RGBA", (w, h), (255, 255, 255, 255))
    if kind == "grey":
        g = int(rng.integers(228, 246))
        return Image.new("RGBA", (w, h), (g, g, g, 255))
    if kind == "tint":
        c = tuple(int(v) for v in rng.integers(215, 256, 3))
        return Image.new("RGBA", (w, h), (*c, 255))
    if kind == "room":
        return _room(rng, w, h)
    if kind == "clutter":
        return _clutter(rng, w, h)
    if kind == "texture":
        return _texture(rng, w, h)
    if kind == "dark":
        top = rng.integers(60, 180, 3).astype(np.float32)
        return _ramp(top, top - rng.integers(20, 60, 3).astype(np.float32), w, h)
    # gradient / studio: vertical ramp from light to darker
    top = rng.integers(225, 256, 3).astype(np.float32)
    return _ramp(top, top - rng.integers(25, 70, 3).astype(np.float32), w, h)


def _palette_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A colour of the shared palette (frames and accents of every category): colour says nothing of it."""
    base = FRAMES[int(rng.integers(len(FRAMES)))][1] if rng.random() < 0.5 else pick(rng, ACCENTS)
    return tuple(int(v) for v in np.clip(np.asarray(base) + rng.integers(-30, 31, 3), 0, 255))


def _room(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Lifestyle shot: a wall, a floor from a random height, a skirting board, maybe a window or a plant pot."""
    wall = tuple(int(v) for v in rng.integers(150, 250, 3))
    floor = tuple(int(v) for v in rng.integers(70, 200, 3))
    img = Image.new("RGBA", (w, h), (*wall, 255))
    d = ImageDraw.Draw(img)
    y = int(h * rng.uniform(0.5, 0.85))
    d.rectangle([0, y, w, h], fill=(*floor, 255))
    for _ in range(int(rng.integers(0, 12))):  # floor boards
        x = int(w * rng.random())
        d.line(
            [(x, y), (x + int(w * rng.uniform(-0.3, 0.3)), h)], fill=(*(max(0, c - 25) for c in floor), 255)
        )
    d.rectangle([0, y - max(2, h // 60), w, y], fill=(235, 235, 235, 255))
    if rng.random() < 0.5:
        x0, y0 = int(w * rng.uniform(0, 0.7)), int(h * rng.uniform(0.02, 0.2))
        d.rectangle(
            [x0, y0, x0 + int(w * 0.25), y0 + int(y * 0.4)],
            fill=(215, 230, 245, 255),
            outline=(250, 250, 250, 255),
            width=max(2, w // 80),
        )
    if rng.random() < 0.4:
        x0 = int(w * rng.choice((0.02, 0.85)))
        d.rectangle([x0, y - h // 8, x0 + w // 12, y], fill=(*_palette_colour(rng), 255))
        d.ellipse([x0 - w // 20, y - h // 3, x0 + w // 8, y - h // 9], fill=(50, 120, 60, 255))
    return img


def _clutter(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A busy background: a tint with random shapes in the palette's colours (posters, boxes, banners)."""
    img = Image.new("RGBA", (w, h), (*(int(v) for v in rng.integers(170, 256, 3)), 255))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(4, 14))):
        x0, y0 = int(w * rng.random()), int(h * rng.random())
        x1, y1 = x0 + int(w * rng.uniform(0.05, 0.4)), y0 + int(h * rng.uniform(0.05, 0.4))
        col = (*_palette_colour(rng), 255)
        kind = int(rng.integers(3))
        if kind == 0:
            d.rectangle([x0, y0, x1, y1], fill=col)
        elif kind == 1:
            d.ellipse([x0, y0, x1, y1], fill=col)
        else:
            d.line([(x0, y0), (x1, y1)], fill=col, width=max(2, int(min(w, h) * rng.uniform(0.01, 0.04))))
    return img


def _texture(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Stripes or tiles (a gym floor, a shelf, a tiled wall)."""
    a = rng.integers(120, 250, 3)
    b = np.clip(a - rng.integers(15, 60, 3), 0, 255)
    period = int(rng.integers(6, 40))
    yy, xx = np.mgrid[0:h, 0:w]
    if rng.random() < 0.5:
        mask = ((yy // period + xx // period) % 2).astype(bool)
    else:
        mask = (((xx + yy * float(rng.uniform(-1, 1))) // period) % 2).astype(bool)
    arr = np.where(mask[..., None], a[None, None, :], b[None, None, :]).astype(np.uint8)
    alpha = np.full((h, w, 1), 255, np.uint8)
    return Image.fromarray(np.concatenate([arr, alpha], axis=2), "RGBA")


def _ramp(top: np.ndarray, bottom: np.ndarray, w: int, h: int) -> Image.Image:
    """Vertical colour ramp."""
    ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    arr = top[None, None, :] * (1 - ramp) + bottom[None, None, :] * ramp
    arr = np.broadcast_to(np.clip(arr, 0, 255), (h, w, 3)).astype(np.uint8)
    alpha = np.full((h, w, 1), 255, np.uint8)
    return Image.fromarray(np.concatenate([arr, alpha], axis=2), "RGBA")


def _place(size: int, extent: int, shift: float) -> int:
    """Offset of an object of `extent` in a frame of `size`, shifted off-centre; a larger object is cut."""
    pos = int((size - extent) / 2 + shift * size)
    return min(max(min(0, size - extent), pos), max(0, size - extent))


def render(spec: tuple[Any, ...]) -> None:
    """Draw, photograph and save one card image; a pure function of `spec`.

    An 11th item, the card's plan of the hard profile's image effects (:mod:`prodmatch.data.synthetic.hard`),
    adds them; they draw from their own streams, so the default photo's draws stay the same.
    """
    path, seed_key, target, traits, aspect, photo, fmt, mode, size_cap, large_share, *extra = spec
    hard = extra[0] if extra else None
    rng = np.random.default_rng(seed_key)
    if hard is not None and hard["stock_photo"]:
        _render_stock(rng, spec, hard)
        return
    lo, hi = photo["size"]
    hi = min(hi, size_cap)
    lo = min(lo, hi - 40)
    long_side = int(rng.integers(700, 1201)) if rng.random() < large_share else int(rng.integers(lo, hi + 1))
    ratio = float(pick(rng, photo["aspect"]))
    w, h = (
        (long_side, max(64, int(long_side / ratio)))
        if ratio >= 1
        else (max(64, int(long_side * ratio)), long_side)
    )
    bg = pick(rng, photo["bg"])
    # cut-out product shots: an RGBA file always has a transparent background
    canvas = _background(rng, "transparent" if mode == "RGBA" else bg, w, h)

    scale = float(rng.uniform(*photo["scale"]))
    obj = draw_object(target, traits, aspect, scale * w, scale * h)
    if rng.random() < photo["flip"]:
        obj = obj.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    angle = float(rng.uniform(-photo["rot"], photo["rot"]))
    if abs(angle) > 0.2:
        obj = obj.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    if hard is not None:
        obj = hard_images.turn(obj, hard)
    shift = float(photo.get("shift", 0.08))
    ox = _place(w, obj.width, rng.uniform(-shift, shift))
    oy = _place(h, obj.height, rng.uniform(-shift, shift) * 0.75)
    if rng.random() < photo["shadow"]:
        ImageDraw.Draw(canvas).ellipse(
            [ox + obj.width * 0.05, oy + obj.height * 0.92, ox + obj.width * 0.95, oy + obj.height * 1.02],
            fill=(200, 200, 200, 255),
        )
    # a tight crop (object larger than the frame) cuts the object at the borders
    canvas.alpha_composite(obj, (max(0, ox), max(0, oy)), (max(0, -ox), max(0, -oy)))
    if hard is not None:  # the shop's camera and light first, then what it pastes on the photo
        canvas = hard_images.colour(hard_images.mirror(canvas, hard), hard)
        hard_images.stickers(canvas, hard, _font)
    if rng.random() < photo["watermark"]:
        _watermark(rng, canvas, photo.get("mark", "shop"))
    quality = int(rng.integers(photo["quality"][0], photo["quality"][1] + 1))
    save_image(
        _finish_pixels(rng, canvas, mode, int(photo["noise"]) if fmt != "PNG" else 0), path, fmt, quality
    )


def _render_stock(rng: np.random.Generator, spec: tuple[Any, ...], hard: dict[str, Any]) -> None:
    """Save the card's family stock photo (hard profile, I7) in the card's format and mode, stickers pasted on."""
    path, _, target, _, _, photo, fmt, mode, size_cap = spec[:9]
    canvas = hard_images.stock_canvas(hard, target, size_cap, transparent=mode == "RGBA")
    hard_images.stickers(canvas, hard, _font)
    quality = int(rng.integers(photo["quality"][0], photo["quality"][1] + 1))
    save_image(_finish_pixels(rng, canvas, mode, 0), path, fmt, quality)


def _watermark(rng: np.random.Generator, canvas: Image.Image, text: str) -> None:
    w, h = canvas.size
    font = _font(max(9, h // 22))
    d = ImageDraw.Draw(canvas)
    x0, y0, x1, y1 = d.textbbox((0, 0), text, font=font)
    corner = int(rng.integers(4))
    x = 6 if corner in (0, 2) else w - (x1 - x0) - 10
    y = 6 if corner in (0, 1) else h - (y1 - y0) - 12
    d.rectangle([x - 3, y - 2, x + (x1 - x0) + 4, y + (y1 - y0) + 6], fill=(245, 245, 245, 200))
    d.text((x - x0, y - y0), text, fill=(120, 120, 120, 255), font=font)


def _finish_pixels(rng: np.random.Generator, canvas: Image.Image, mode: str, amp: int) -> Image.Image:
    """Flatten to the file's mode; lossy shops get mild sensor-like noise (PNG cut-outs stay clean)."""
    # under a transparent background scraped cut-outs often hold black: a loader must composite, not drop alpha
    rgb = Image.new("RGB", canvas.size, (0, 0, 0) if mode == "RGBA" else (255, 255, 255))
    rgb.paste(canvas, mask=canvas.getchannel("A"))
    if amp > 0:
        w, h = rgb.size
        # rng.bytes is the cheapest deterministic source; the modulo bias is irrelevant for noise
        noise = np.frombuffer(rng.bytes(w * h * 3), np.uint8).reshape(h, w, 3) % np.uint8(2 * amp + 1)
        rgb = ImageChops.add(rgb, Image.fromarray(noise, "RGB"), scale=1.0, offset=-amp)
    if mode == "RGBA":
        rgb.putalpha(canvas.getchannel("A"))
        return rgb
    if mode == "P":
        return rgb.quantize(colors=64, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    return rgb if mode == "RGB" else rgb.convert(mode)


def save_image(img: Image.Image, path: str, fmt: str, quality: int) -> None:
    """Save with every encoder parameter explicit, so the bytes depend on the pixels only."""
    if fmt == "JPEG":
        img.save(path, "JPEG", quality=quality, subsampling=2, optimize=False, progressive=False)
    elif fmt == "PNG":
        img.save(path, "PNG", optimize=False, compress_level=1)
    else:
        img.save(path, "WEBP", quality=quality, method=1, lossless=False, exact=False)
