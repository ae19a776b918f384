# Copyright (c) mmcast contributors. All rights reserved.
"""Exact shapes and textures for the street world's objects.

The shapes are drawn with cv2 without anti-aliasing, so that a mask is
exactly the pixels an object covers; :class:`Painter` fills the parts of
one object with their colours and textures on full-size canvases.
"""
import colorsys
from typing import Callable, Sequence, Tuple

import cv2
import numpy as np


def _pt(x: float, y: float) -> Tuple[int, int]:
    return int(round(x)), int(round(y))


def draw_ellipse(m: np.ndarray,
                 cx: float,
                 cy: float,
                 ax: float,
                 ay: float,
                 angle: float = 0.0) -> None:
    """Fill an ellipse (centre, half axes, angle in degrees) with 1 in the
    uint8 mask ``m`` ``(H, W)``; likewise the other ``draw_*``."""
    cv2.ellipse(m, _pt(cx,
                       cy), (max(1, int(round(ax))), max(1, int(round(ay)))),
                angle, 0, 360, 1, -1, cv2.LINE_8)


def draw_circle(m: np.ndarray,
                cx: float,
                cy: float,
                r: float,
                thickness: int = -1) -> None:
    """A disc, or a ring of ``thickness`` pixels."""
    cv2.circle(m, _pt(cx, cy), max(1, int(round(r))), 1, thickness, cv2.LINE_8)


def draw_rect(m: np.ndarray, x0: float, y0: float, x1: float,
              y1: float) -> None:
    """An axis-aligned box between two corners."""
    xa, xb = sorted((x0, x1))
    ya, yb = sorted((y0, y1))
    cv2.rectangle(m, _pt(xa, ya), _pt(xb, yb), 1, -1, cv2.LINE_8)


def draw_round_rect(m: np.ndarray, x0: float, y0: float, x1: float, y1: float,
                    r: float) -> None:
    """A box with corners rounded by ``r``."""
    xa, xb = sorted((x0, x1))
    ya, yb = sorted((y0, y1))
    r = max(0.0, min(r, (xb - xa) / 2, (yb - ya) / 2))
    draw_rect(m, xa + r, ya, xb - r, yb)
    draw_rect(m, xa, ya + r, xb, yb - r)
    if r >= 1:
        for cx in (xa + r, xb - r):
            for cy in (ya + r, yb - r):
                draw_circle(m, cx, cy, r)


def draw_poly(m: np.ndarray, pts: Sequence[Tuple[float, float]]) -> None:
    """A filled polygon of ``(x, y)`` points."""
    arr = np.array([_pt(x, y) for x, y in pts], dtype=np.int32)
    cv2.fillPoly(m, [arr], 1, cv2.LINE_8)


def draw_line(m: np.ndarray, x0: float, y0: float, x1: float, y1: float,
              thickness: float) -> None:
    """A segment ``thickness`` pixels wide."""
    cv2.line(m, _pt(x0, y0), _pt(x1, y1), 1, max(1, int(round(thickness))),
             cv2.LINE_8)


def hsv_colour(hue: float, sat: float, val: float) -> np.ndarray:
    """RGB float32 ``(3,)`` in 0..255 of a hue in degrees and a saturation
    and value in 0..1 (clipped)."""
    r, g, b = colorsys.hsv_to_rgb((hue % 360.0) / 360.0,
                                  float(np.clip(sat, 0, 1)),
                                  float(np.clip(val, 0, 1)))
    return np.array([r, g, b], dtype=np.float32) * 255.0


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int,
                 amplitude: float) -> np.ndarray:
    """Low-frequency noise, ``(H, W)`` float32 in about ``±amplitude``."""
    ch = max(2, cells * height // max(height, width) + 1)
    cw = max(2, cells * width // max(height, width) + 1)
    grid = rng.uniform(-amplitude, amplitude, (ch, cw)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR)


#: A part of an object: (draw function onto a uint8 mask, RGB colour, texture).
Part = Tuple[Callable[[np.ndarray], None], np.ndarray, str]


class Painter:
    """Paints textured parts of one object onto full-size canvases.

    Args:
        height (int): Canvas height.
        width (int): Canvas width.
        period (int): Texture period in pixels (at least 2).
        phase (int): Texture offset in pixels.

    Attributes:
        mask (np.ndarray): The pixels painted so far, bool ``(H, W)``.
        rgb (np.ndarray): Their colours, float32 ``(H, W, 3)``.
    """

    def __init__(self, height: int, width: int, period: int, phase: int):
        self.height, self.width = height, width
        self.yy, self.xx = np.mgrid[0:height, 0:width]
        self.period = max(2, period)
        self.phase = phase
        self.mask = np.zeros((height, width), dtype=bool)
        self.rgb = np.zeros((height, width, 3), dtype=np.float32)

    def paint(self, draw: Callable[[np.ndarray], None], colour: np.ndarray,
              texture: str) -> None:
        """Paint one part, drawn by ``draw`` onto a uint8 mask, in
        ``colour`` (RGB) with ``texture`` (``'plain'``, ``'hstripes'``,
        ``'vstripes'``, ``'checks'`` or ``'dots'``) over the parts before."""
        canvas = np.zeros((self.height, self.width), dtype=np.uint8)
        draw(canvas)
        m = canvas.astype(bool)
        if not m.any():
            return
        ys, xs = self.yy[m] + self.phase, self.xx[m] + self.phase
        p = self.period
        col = np.broadcast_to(colour, (len(ys), 3)).copy()
        if texture == 'plain':
            shade = 1.12 - 0.24 * (self.yy[m] / self.height)
            col *= shade[:, None]
        elif texture == 'hstripes':
            col[(ys // p) % 2 == 1] *= 0.5
        elif texture == 'vstripes':
            col[(xs // p) % 2 == 1] *= 0.5
        elif texture == 'checks':
            odd = ((xs // p) + (ys // p)) % 2 == 1
            col[odd] = col[odd] * 0.45 + 120.0
        elif texture == 'dots':
            r = max(1.0, p * 0.3)
            dots = ((xs % (2 * p) - p)**2 + (ys % (2 * p) - p)**2) <= r * r
            col[dots] = 245.0
        else:
            raise ValueError(f'unknown texture {texture!r}')
        self.rgb[m] = col
        self.mask |= m
