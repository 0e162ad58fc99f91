"""Per-category product silhouettes drawn with a :class:`Pen` in unit coordinates of the object box."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw


class Pen:
    """Draws in unit coordinates of the object box; sizes relative to the box height."""

    def __init__(self, img: Image.Image, lw: float) -> None:
        self.d = ImageDraw.Draw(img)
        self.w, self.h = img.size
        self.lw = lw

    def pt(self, x: float, y: float) -> tuple[float, float]:
        return (x * (self.w - 1), y * (self.h - 1))

    def line(self, pts: Sequence[tuple[float, float]], col: tuple[int, ...], width: float = 1.0) -> None:
        self.d.line([self.pt(*p) for p in pts], fill=col, width=max(1, round(width * self.lw)), joint="curve")

    def rect(self, x0: float, y0: float, x1: float, y1: float, col: tuple[int, ...]) -> None:
        a, b = self.pt(min(x0, x1), min(y0, y1))
        c, e = self.pt(max(x0, x1), max(y0, y1))
        self.d.rectangle([a, b, max(a, c), max(b, e)], fill=col)

    def poly(self, pts: Sequence[tuple[float, float]], col: tuple[int, ...]) -> None:
        self.d.polygon([self.pt(*p) for p in pts], fill=col)

    def circle(
        self,
        cx: float,
        cy: float,
        r: float,
        col: tuple[int, ...] | None,
        outline: tuple[int, ...] | None = None,
        width: float = 1.0,
    ) -> None:
        x, y = self.pt(cx, cy)
        rr = max(1.0, r * self.h)
        self.d.ellipse(
            [x - rr, y - rr, x + rr, y + rr], fill=col, outline=outline, width=max(1, round(width * self.lw))
        )

    def ellipse(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        col: tuple[int, ...] | None,
        outline: tuple[int, ...] | None = None,
        width: float = 1.0,
    ) -> None:
        a, b = self.pt(min(x0, x1), min(y0, y1))
        c, e = self.pt(max(x0, x1), max(y0, y1))
        self.d.ellipse(
            [a, b, max(a + 1, c), max(b + 1, e)],
            fill=col,
            outline=outline,
            width=max(1, round(width * self.lw)),
        )


def _draw_treadmill(pen: Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk = t["p"], t["frame"], t["accent"], t["dark"]
    x0, x1 = 0.04, 0.80 + 0.16 * p[0]
    top, h, inc = 0.78 - 0.06 * p[1], 0.06 + 0.06 * p[2], 0.06 * p[3]
    pen.poly([(x0, top + h), (x1, top + h - inc), (x1, top - inc), (x0, top)], fr)
    pen.line([(x0 + 0.03, top - 0.012), (x1 - 0.1, top - inc * 0.85 - 0.012)], dk, 2.0)
    pen.rect(x0, top + h, x0 + 0.05, 0.97, dk)
    pen.rect(x1 - 0.06, top + h - inc, x1, 0.97, dk)
    if t["variant"] != 1:  # motorised: motor hood
        pen.rect(x1 - 0.18 - 0.05 * p[6], top - inc - 0.07 - 0.04 * p[7], x1 + 0.01, top - inc + 0.02, ac)
    xu, ty = x1 - 0.1, 0.14 + 0.14 * p[4]
    xt = xu - 0.06 - 0.08 * p[5]
    pen.line([(xu, top - inc), (xt, ty)], fr, 2.6)
    cw = 0.1 + 0.08 * p[6]
    pen.rect(xt - cw, ty - 0.08, xt + cw * 0.5, ty + 0.03, dk)
    pen.rect(xt - cw * 0.8, ty - 0.06, xt + cw * 0.3, ty + 0.0, ac)
    pen.line([(xt - 0.02, ty + 0.06), (xt - 0.22 - 0.12 * p[7], ty + 0.14)], fr, 1.8)


def _draw_bike(pen: Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk, v = t["p"], t["frame"], t["accent"], t["dark"], t["variant"]
    pen.line([(0.08, 0.95), (0.40, 0.95)], dk, 3.0)
    pen.line([(0.58, 0.95), (0.92, 0.95)], dk, 3.0)
    fx, fy, fr_r = 0.72 + 0.06 * p[0], 0.68, 0.12 + 0.08 * p[1]
    if v == 2:  # recumbent: low seat with backrest
        pen.line([(0.22, 0.95), (0.30, 0.66), (fx, fy)], fr, 3.0)
        pen.rect(0.16, 0.58, 0.42, 0.64, dk)
        pen.line([(0.18, 0.60), (0.08 + 0.05 * p[2], 0.22 + 0.1 * p[3])], dk, 5.0)
    else:
        sx, sy = 0.30 - 0.06 * p[2], 0.32 + 0.08 * p[3]
        pen.line([(0.26, 0.95), (0.38, 0.64), (fx, fy)], fr, 3.0)
        pen.line([(0.38, 0.64), (sx, sy)], fr, 2.6)
        pen.ellipse(sx - 0.11, sy - 0.035, sx + 0.09, sy + 0.03, dk)
    if v == 1:  # spin bike: bare heavy flywheel
        pen.circle(fx + 0.02, fy + 0.04, fr_r + 0.03, dk)
        pen.circle(fx + 0.02, fy + 0.04, fr_r - 0.02, ac)
        pen.circle(fx + 0.02, fy + 0.04, 0.03, dk)
    else:
        pen.circle(fx, fy, fr_r, ac)
        pen.circle(fx, fy, fr_r * 0.5, fr)
    bx, by = 0.74 + 0.06 * p[4], 0.18 + 0.1 * p[5]
    pen.line([(fx - 0.04, fy - 0.04), (bx, by)], fr, 2.6)
    pen.line([(bx, by), (bx - 0.14, by + 0.04)], dk, 2.2)
    if v != 1:
        pen.rect(bx - 0.05, by - 0.07, bx + 0.05, by, dk)
    pen.circle(0.48, 0.74, 0.05, dk)
    pen.line([(0.48, 0.74), (0.53, 0.84)], dk, 1.6)


def _draw_elliptical(pen: Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk = t["p"], t["frame"], t["accent"], t["dark"]
    front = p[7] < 0.6  # front- or rear-drive
    fx = 0.80 if front else 0.18
    ox = 0.12 if front else 0.88
    pen.line([(0.05, 0.94), (0.95, 0.94)], dk, 3.0)
    pen.circle(fx, 0.72, 0.13 + 0.07 * p[0], ac)
    pen.circle(fx, 0.72, 0.05, fr)
    pen.line([(fx, 0.72), (ox, 0.86)], fr, 2.4)
    pen.line([(fx, 0.70), (ox + (0.08 if front else -0.08), 0.80)], fr, 2.0)
    pen.rect(ox - 0.06, 0.83, ox + 0.08, 0.86, dk)
    mx = 0.66 if front else 0.36
    top = 0.22 + 0.1 * p[1]
    pen.line([(mx, 0.93), (mx + 0.04, top)], fr, 3.0)
    pen.rect(mx - 0.03, top - 0.08, mx + 0.12, top + 0.01, dk)
    hx = 0.5 + 0.08 * p[2]
    pen.line([(hx - 0.1, 0.82), (hx, 0.05 + 0.08 * p[3])], fr, 2.0)
    pen.line([(hx - 0.04, 0.82), (hx + 0.08, 0.07 + 0.08 * p[4])], ac, 2.0)


def _draw_rower(pen: Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk, v = t["p"], t["frame"], t["accent"], t["dark"], t["variant"]
    pen.line([(0.03, 0.88), (0.84, 0.80)], fr, 2.6)
    pen.rect(0.02, 0.86, 0.07, 0.97, dk)
    if v == 2:  # water tank
        pen.ellipse(0.74, 0.48, 0.99, 0.95, (170, 205, 230), outline=ac, width=2.0)
    elif v == 1:  # air fan
        pen.circle(0.88, 0.66, 0.26, dk)
        for k in range(6):
            a = k * math.pi / 3 + p[0]
            pen.line([(0.88, 0.66), (0.88 + 0.09 * math.cos(a), 0.66 + 0.24 * math.sin(a))], ac, 1.5)
    else:
        pen.circle(0.88, 0.70, 0.2 + 0.06 * p[1], ac)
    xs = 0.28 + 0.2 * p[2]
    pen.rect(xs - 0.05, 0.76 - 0.02 * xs, xs + 0.05, 0.83 - 0.02 * xs, dk)
    pen.poly([(0.66, 0.80), (0.72, 0.58), (0.74, 0.60), (0.70, 0.80)], dk)
    top = 0.22 + 0.14 * p[3]
    pen.line([(0.86, 0.6), (0.80 - 0.04 * p[4], top)], fr, 2.0)
    pen.rect(0.76 - 0.04 * p[4], top - 0.12, 0.84 - 0.04 * p[4], top, dk)
    pen.line([(0.70, 0.62), (0.72, 0.70)], dk, 2.0)


def _draw_stepper(pen: Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk, v = t["p"], t["frame"], t["accent"], t["dark"], t["variant"]
    if v == 2:  # stair climber
        pen.poly([(0.15, 0.96), (0.85, 0.96), (0.85, 0.40), (0.60, 0.22 + 0.06 * p[0]), (0.15, 0.62)], fr)
        for k in range(4):
            y = 0.9 - k * 0.12
            pen.rect(0.2 + k * 0.1, y - 0.02, 0.5 + k * 0.1, y, ac)
        pen.line([(0.2, 0.6), (0.3, 0.18), (0.62, 0.1)], dk, 2.2)
        pen.rect(0.55, 0.05, 0.75, 0.15, dk)
        return
    if v == 1:  # mini stepper, drawn filling its own (wide) box
        pen.rect(0.12, 0.78, 0.88, 0.95, dk)
        y1, y2 = 0.18 + 0.15 * p[1], 0.42 - 0.1 * p[2]
        pen.rect(0.04, y1, 0.48, y1 + 0.14, ac)
        pen.rect(0.52, y2, 0.96, y2 + 0.14, ac)
        pen.line([(0.28, y1 + 0.14), (0.36, 0.8)], fr, 2.4)
        pen.line([(0.72, y2 + 0.14), (0.64, 0.8)], fr, 2.4)
        pen.rect(0.4 + 0.1 * p[3], 0.58, 0.52 + 0.1 * p[3], 0.7, (40, 40, 40))
        return
    pen.rect(0.18, 0.88, 0.82, 0.96, dk)
    y1, y2 = 0.70 + 0.06 * p[1], 0.80 - 0.04 * p[2]
    pen.rect(0.14, y1, 0.48, y1 + 0.05, ac)
    pen.rect(0.52, y2, 0.86, y2 + 0.05, ac)
    pen.line([(0.3, y1 + 0.05), (0.36, 0.9)], fr, 2.0)
    pen.line([(0.7, y2 + 0.05), (0.64, 0.9)], fr, 2.0)
    if v == 0:  # column with handrail
        top = 0.12 + 0.12 * p[3]
        pen.line([(0.5, 0.9), (0.5 + 0.08 * p[4], top)], fr, 3.0)
        pen.line([(0.2, top + 0.18), (0.2, top), (0.8, top), (0.8, top + 0.18)], fr, 2.0)
        pen.rect(0.42, top - 0.08, 0.62, top, dk)


def _draw_weights(pen: Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk, v = t["p"], t["frame"], t["accent"], t["dark"], t["variant"]
    if v == 2:  # squat rack with barbell
        for x in (0.28, 0.72):
            pen.line([(x, 0.96), (x, 0.1 + 0.08 * p[0])], fr, 3.0)
            pen.line([(x - 0.12, 0.96), (x + 0.12, 0.96)], fr, 3.0)
        y = 0.32 + 0.1 * p[1]
        pen.line([(0.05, y), (0.95, y)], dk, 1.8)
        for x in (0.12, 0.88):
            pen.ellipse(x - 0.035, y - 0.16 - 0.06 * p[2], x + 0.035, y + 0.16 + 0.06 * p[2], ac)
        return
    if v == 3:  # plate-loaded leg machine
        pen.poly([(0.05, 0.95), (0.95, 0.95), (0.95, 0.88), (0.25, 0.2 + 0.1 * p[0]), (0.15, 0.25)], fr)
        pen.rect(0.45, 0.45, 0.7, 0.6, dk)
        pen.circle(0.75, 0.38, 0.1 + 0.04 * p[1], ac)
        return
    # flat/incline bench or Scott bench
    pen.line([(0.2, 0.95), (0.25, 0.62)], fr, 2.6)
    pen.line([(0.75, 0.95), (0.7, 0.62)], fr, 2.6)
    pen.line([(0.1, 0.95), (0.9, 0.95)], fr, 2.6)
    pen.rect(0.08, 0.56, 0.55, 0.63, dk)
    ang = 0.25 + 0.3 * p[2] if v == 1 else 0.12 * p[2]
    pen.poly([(0.55, 0.63), (0.92, 0.63 - ang), (0.92, 0.55 - ang), (0.55, 0.56)], dk)
    if v == 1:
        pen.line([(0.7, 0.6), (0.72, 0.22)], fr, 2.2)
        pen.rect(0.6, 0.12 + 0.05 * p[3], 0.85, 0.24, ac)
    else:
        pen.line([(0.82, 0.62), (0.84, 0.2)], fr, 2.0)
        pen.line([(0.6, 0.22), (0.99, 0.22)], dk, 1.6)
        pen.circle(0.62, 0.22, 0.07 + 0.03 * p[3], ac)


def _draw_multi(pen: Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk = t["p"], t["frame"], t["accent"], t["dark"]
    top = 0.04 + 0.06 * p[0]
    for x in (0.08, 0.92):
        pen.line([(x, 0.97), (x, top)], fr, 3.2)
    pen.line([(0.08, top), (0.92, top)], fr, 3.2)
    pen.line([(0.04, 0.97), (0.96, 0.97)], fr, 3.0)
    sx0 = 0.66 + 0.06 * p[1]
    pen.rect(sx0, 0.45 + 0.1 * p[2], sx0 + 0.14, 0.93, dk)
    for k in range(6):
        y = 0.5 + 0.1 * p[2] + k * 0.07
        pen.line([(sx0, y), (sx0 + 0.14, y)], ac, 1.0)
    for x in (0.2, 0.5 + 0.1 * p[3], sx0 + 0.07):
        pen.circle(x, top + 0.05, 0.035, dk)
    pen.line([(0.2, top + 0.05), (0.3, 0.55)], dk, 1.0)
    pen.line([(sx0 + 0.07, top + 0.05), (sx0 + 0.07, 0.45)], dk, 1.0)
    pen.rect(0.3, 0.68, 0.56, 0.73, dk)
    pen.line([(0.42, 0.73), (0.42, 0.97)], fr, 2.0)
    pen.rect(0.3, 0.38 + 0.08 * p[4], 0.35, 0.68, dk)
    if p[5] > 0.5:  # Smith machine bar
        y = 0.3 + 0.15 * p[6]
        pen.line([(0.08, y), (0.92, y)], dk, 1.6)
        pen.ellipse(0.12, y - 0.1, 0.16, y + 0.1, ac)


def _draw_trampoline(pen: Pen, t: dict[str, Any]) -> None:
    p, fr, ac, dk, v = t["p"], t["frame"], t["accent"], t["dark"], t["variant"]
    y0 = 0.62 + 0.06 * p[0]
    for x in (0.15, 0.38, 0.62, 0.85):
        pen.line([(x, y0 + 0.04), (x - 0.03, 0.97), (x + 0.03, 0.97)], fr, 2.0)
    pen.ellipse(0.04, y0 - 0.1, 0.96, y0 + 0.1, ac)
    pen.ellipse(0.1, y0 - 0.07, 0.9, y0 + 0.07, dk)
    if v != 1:  # safety net
        net = 0.08 + 0.15 * p[1]
        xs = (0.08, 0.3, 0.5, 0.7, 0.92)
        for x in xs:
            pen.line([(x, y0), (x, net)], fr, 1.6)
        pen.line([(x, net + 0.03 * math.sin(3 * x + p[2])) for x in xs], fr, 1.4)
        for x in np.linspace(0.1, 0.9, 9):
            pen.line([(float(x), y0 - 0.08), (float(x), net + 0.04)], (150, 150, 150), 0.5)


VARIANT_ASPECT = {("steppery", 1): 1.6, ("steppery", 2): 0.9, ("velotrenazhery", 2): 1.15}


def draw_object(
    target: str, traits: dict[str, Any], aspect: float, max_w: float, max_h: float
) -> Image.Image:
    """The product as large as fits a ``max_w`` x ``max_h`` box at its own proportions (RGBA, transparent)."""
    obj_aspect = VARIANT_ASPECT.get((target, traits["variant"]), aspect) * (0.92 + 0.16 * traits["p"][7])
    bw = max_w
    bh = bw / obj_aspect
    if bh > max_h:
        bh = max_h
        bw = bh * obj_aspect
    bw, bh = max(24, int(bw)), max(24, int(bh))
    obj = Image.new("RGBA", (bw, bh), (0, 0, 0, 0))
    DRAWERS[target](Pen(obj, max(1.0, min(bw, 1.6 * bh) / 45.0) * traits["thick"]), traits)
    return obj


DRAWERS = {
    "begovye_dorozhki": _draw_treadmill,
    "ellipticheskie_trenazhery": _draw_elliptical,
    "velotrenazhery": _draw_bike,
    "trenazhery_na_svobodnykh_vesakh": _draw_weights,
    "multistantsii": _draw_multi,
    "grebnye_trenazhery": _draw_rower,
    "steppery": _draw_stepper,
    "batuty": _draw_trampoline,
}
