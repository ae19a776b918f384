# Copyright (c) mmcast contributors. All rights reserved.
"""The 8 thing classes of the street world, drawn as parts.

Every class has its own shape, colour family and texture (a person is a thin
striped ellipse with a head, a rider a dotted person on a two-wheeler, a car a
rounded box with a cabin and wheels, a truck a cab plus a chequered cargo box,
a bus a long box with a window strip, a train a very long striped box, a
motorcycle two solid wheels and a thick body, a bicycle two thin rings and a
thin frame). :data:`CLASS_PARTS` maps a class to the function that lists the
parts of one object of it, each ``(draw, colour, texture)`` for
:class:`~mmcast.toy.drawing.Painter`.
"""
from typing import Callable, Dict, List, Tuple

import numpy as np

from .drawing import (Part, draw_circle, draw_ellipse, draw_line, draw_poly,
                      draw_rect, draw_round_rect, hsv_colour)

#: Per class: base hue (deg), saturation, value, texture, sampling weight.
CLASS_LOOK: Dict[str, Tuple[float, float, float, str, float]] = {
    'person': (350.0, 0.80, 0.85, 'vstripes', 1.2),
    'rider': (28.0, 0.90, 0.95, 'dots', 1.0),
    'car': (218.0, 0.75, 0.80, 'plain', 1.2),
    'truck': (120.0, 0.65, 0.65, 'checks', 0.9),
    'bus': (50.0, 0.85, 0.95, 'plain', 0.8),
    'train': (275.0, 0.35, 0.75, 'hstripes', 0.5),
    'motorcycle': (310.0, 0.80, 0.80, 'plain', 1.0),
    'bicycle': (172.0, 0.80, 0.70, 'plain', 1.0),
}
#: Object scale (in units of u): height for person/rider, length otherwise.
CLASS_SIZE: Dict[str, float] = {
    'person': 1.15,
    'rider': 1.2,
    'car': 1.8,
    'truck': 2.4,
    'bus': 3.2,
    'train': 5.0,
    'motorcycle': 1.25,
    'bicycle': 1.2,
}
_DARK = (38.0, 38.0, 42.0)
_GLASS = (70.0, 84.0, 104.0)
_LIGHT_GLASS = (170.0, 200.0, 220.0)
_SKIN = (228.0, 186.0, 156.0)

# The parts of one object: (cx, yb) = bottom centre, u = scale (pixels),
# d = facing (+1 right), base = RGB colour, tex = texture of the main parts.


def _person_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
                  tex: str, rng: np.random.Generator) -> List[Part]:
    h = CLASS_SIZE['person'] * u
    legs = hsv_colour(rng.uniform(200, 240), 0.35, rng.uniform(0.2, 0.35))
    t_leg = max(2.0, 0.09 * h)
    t_arm = max(2.0, 0.06 * h)
    return [
        (lambda m: draw_line(m, cx - 0.08 * h, yb, cx - 0.04 * h, yb - 0.46 *
                             h, t_leg), legs, 'plain'),
        (lambda m: draw_line(m, cx + 0.08 * h, yb, cx + 0.04 * h, yb - 0.46 *
                             h, t_leg), legs, 'plain'),
        (lambda m: draw_line(m, cx - 0.13 * h, yb - 0.76 * h, cx - 0.2 * h, yb
                             - 0.47 * h, t_arm), base * 0.8, 'plain'),
        (lambda m: draw_line(m, cx + 0.13 * h, yb - 0.76 * h, cx + 0.2 * h, yb
                             - 0.47 * h, t_arm), base * 0.8, 'plain'),
        (lambda m: draw_ellipse(m, cx, yb - 0.62 * h, 0.17 * h, 0.25 * h),
         base, tex),
        (lambda m: draw_circle(m, cx, yb - 0.93 * h, 0.1 * h), np.array(_SKIN),
         'plain'),
    ]


def _rider_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
                 tex: str, rng: np.random.Generator) -> List[Part]:
    h = CLASS_SIZE['rider'] * u
    r = 0.16 * h
    xr, xf = cx - d * 0.33 * h, cx + d * 0.33 * h
    yw = yb - r
    t_ring = max(2.0, 0.05 * h)
    t_frame = max(2.0, 0.06 * h)
    frame = base * 0.55
    helmet = hsv_colour(rng.uniform(0, 360), 0.2, 0.95)
    return [
        (lambda m: draw_circle(m, xr, yw, r, int(round(t_ring))),
         np.array(_DARK), 'plain'),
        (lambda m: draw_circle(m, xf, yw, r, int(round(t_ring))),
         np.array(_DARK), 'plain'),
        (lambda m: draw_poly(m, [(xr, yw), (cx, yb - 0.42 * h), (xf, yw),
                                 (cx, yw)]), frame, 'plain'),
        (lambda m: draw_line(m, cx, yb - 0.42 * h, cx + d * 0.25 * h, yb - 0.55
                             * h, t_frame), frame, 'plain'),
        (lambda m: draw_line(m, cx - d * 0.02 * h, yb - 0.45 * h, cx + d * 0.14
                             * h, yb - 0.24 * h, max(2.0, 0.08 * h)),
         hsv_colour(220, 0.3, 0.3), 'plain'),
        (lambda m: draw_ellipse(m, cx - d * 0.03 * h, yb - 0.62 * h, 0.13 * h,
                                0.2 * h, d * 18.0), base, tex),
        (lambda m: draw_line(m, cx + d * 0.03 * h, yb - 0.72 * h, cx + d * 0.24
                             * h, yb - 0.56 * h, max(2.0, 0.06 * h)),
         base * 0.8, 'plain'),
        (lambda m: draw_circle(m, cx + d * 0.04 * h, yb - 0.88 * h, 0.095 * h),
         helmet, 'plain'),
    ]


def _car_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
               tex: str, rng: np.random.Generator) -> List[Part]:
    length = CLASS_SIZE['car'] * u
    hc = 0.42 * length

    def x(f: float) -> float:
        return cx + d * f * length

    parts: List[Part] = [
        (lambda m: draw_round_rect(m, cx - length / 2, yb - 0.62 * hc, cx +
                                   length / 2, yb - 0.12 * hc, 0.18 * hc),
         base, tex),
        (lambda m: draw_poly(m, [(x(-0.34), yb - 0.6 * hc),
                                 (x(0.3), yb - 0.6 * hc), (x(0.15), yb - hc),
                                 (x(-0.26), yb - hc)]), base, tex),
        (lambda m: draw_poly(m, [(x(-0.28), yb - 0.64 * hc),
                                 (x(0.23), yb - 0.64 * hc),
                                 (x(0.11), yb - 0.92 * hc),
                                 (x(-0.22), yb - 0.92 * hc)]),
         np.array(_LIGHT_GLASS), 'plain'),
    ]
    for f in (-0.3, 0.3):
        parts.append(
            (lambda m, f=f: draw_circle(m, x(f), yb - 0.2 * hc, 0.2 * hc),
             np.array(_DARK), 'plain'))
        parts.append(
            (lambda m, f=f: draw_circle(m, x(f), yb - 0.2 * hc, 0.08 * hc),
             np.array((150.0, 150.0, 150.0)), 'plain'))
    return parts


def _truck_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
                 tex: str, rng: np.random.Generator) -> List[Part]:
    length = CLASS_SIZE['truck'] * u
    ht = 0.5 * length

    def x(f: float) -> float:
        return cx + d * f * length

    cargo = base * 0.6 + 80.0
    parts: List[Part] = [
        (lambda m: draw_rect(m, x(-0.5), yb - 0.2 * ht, x(0.5), yb - 0.1 * ht),
         np.array(_DARK), 'plain'),
        (lambda m: draw_rect(m, x(-0.5), yb - ht, x(0.2), yb - 0.18 * ht),
         cargo, tex),
        (lambda m: draw_round_rect(m, x(0.24), yb - 0.7 * ht, x(0.5), yb - 0.15
                                   * ht, 0.06 * ht), base, 'plain'),
        (lambda m: draw_rect(m, x(0.31), yb - 0.64 * ht, x(0.46), yb - 0.44 *
                             ht), np.array(_LIGHT_GLASS), 'plain'),
    ]
    for f in (-0.38, -0.2, 0.37):
        parts.append(
            (lambda m, f=f: draw_circle(m, x(f), yb - 0.12 * ht, 0.12 * ht),
             np.array(_DARK), 'plain'))
    return parts


def _bus_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
               tex: str, rng: np.random.Generator) -> List[Part]:
    length = CLASS_SIZE['bus'] * u
    hb = 0.36 * length

    def x(f: float) -> float:
        return cx + d * f * length

    parts: List[Part] = [
        (lambda m: draw_round_rect(m, cx - length / 2, yb - hb, cx + length /
                                   2, yb - 0.1 * hb, 0.1 * hb), base, tex),
        (lambda m: draw_rect(m, cx - length / 2, yb - 0.36 * hb, cx + length /
                             2, yb - 0.27 * hb), base * 0.55, 'plain'),
        # the window strip: a dark band cut by thin pillars
        (lambda m: draw_rect(m, cx - 0.46 * length, yb - 0.86 * hb,
                             cx + 0.46 * length, yb - 0.52 * hb),
         np.array(_GLASS), 'plain'),
    ]
    n_win = 7
    step = 0.92 * length / n_win
    for k in range(1, n_win):
        xp = cx - 0.46 * length + k * step
        parts.append(
            (lambda m, xp=xp: draw_rect(m, xp - 0.012 * length, yb - 0.86 * hb,
                                        xp + 0.012 * length, yb - 0.52 * hb),
             base, 'plain'))
    for f in (-0.33, 0.33):
        parts.append(
            (lambda m, f=f: draw_circle(m, x(f), yb - 0.12 * hb, 0.13 * hb),
             np.array(_DARK), 'plain'))
    return parts


def _train_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
                 tex: str, rng: np.random.Generator) -> List[Part]:
    length = CLASS_SIZE['train'] * u
    htr = 0.26 * length
    x0, x1 = cx - length / 2, cx + length / 2
    parts: List[Part] = [
        (lambda m: draw_line(m, cx - 0.1 * length, yb - htr, cx, yb
                             - 1.25 * htr, max(1.0, 0.03 * htr)),
         np.array(_DARK), 'plain'),
        (lambda m: draw_round_rect(m, x0, yb - htr, x1, yb - 0.1 * htr, 0.25 *
                                   htr), base, tex),
        (lambda m: draw_rect(m, x0 + 0.05 * length, yb - 0.14 * htr, x1 - 0.05
                             * length, yb), np.array(_DARK), 'plain'),
    ]
    n_win = 12
    for k in range(n_win):
        xw = x0 + (k + 0.5) * length / n_win
        parts.append((
            lambda m, xw=xw: draw_rect(m, xw - 0.018 * length, yb - 0.82 * htr,
                                       xw + 0.018 * length, yb - 0.62 * htr),
            np.array(_LIGHT_GLASS), 'plain'))
    return parts


def _motorcycle_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
                      tex: str, rng: np.random.Generator) -> List[Part]:
    length = CLASS_SIZE['motorcycle'] * u
    hm = 0.55 * length
    r = 0.27 * hm

    def x(f: float) -> float:
        return cx + d * f * length

    parts: List[Part] = []
    for f in (-0.34, 0.34):
        parts.append((lambda m, f=f: draw_circle(m, x(f), yb - r, r),
                      np.array(_DARK), 'plain'))
        parts.append((lambda m, f=f: draw_circle(m, x(f), yb - r, 0.35 * r),
                      np.array((160.0, 160.0, 165.0)), 'plain'))
    parts += [
        (lambda m: draw_rect(m, x(-0.1), yb - 0.5 * hm, x(0.12), yb - 0.22 * hm
                             ), np.array((90.0, 90.0, 95.0)), 'plain'),
        (lambda m: draw_ellipse(m, cx, yb - 0.58 * hm, 0.32 * length, 0.2 * hm
                                ), base, tex),
        (lambda m: draw_line(m, x(-0.3), yb - 0.76 * hm, x(-0.02),
                             yb - 0.76 * hm, max(2.0, 0.12 * hm)),
         np.array(_DARK), 'plain'),
        (lambda m: draw_line(m, x(0.2), yb - 0.5 * hm, x(0.3), yb - 1.0 * hm,
                             max(2.0, 0.09 * hm)), base * 0.8, 'plain'),
    ]
    return parts


def _bicycle_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
                   tex: str, rng: np.random.Generator) -> List[Part]:
    length = CLASS_SIZE['bicycle'] * u
    hk = 0.6 * length
    r = 0.3 * hk
    t_ring = max(2.0, 0.06 * hk)
    t = max(2.0, 0.045 * hk)

    def x(f: float) -> float:
        return cx + d * f * length

    rear, front = (x(-0.33), yb - r), (x(0.33), yb - r)
    bracket = (x(-0.02), yb - r)
    seat = (x(-0.13), yb - 0.82 * hk)
    head = (x(0.22), yb - 0.85 * hk)
    bars = [(rear, bracket), (rear, seat), (seat, bracket), (seat, head),
            (head, bracket), (head, front), (head, (x(0.17), yb - hk))]
    parts: List[Part] = [
        (lambda m: draw_circle(m, rear[0], rear[1], r, int(round(t_ring))),
         np.array(_DARK), 'plain'),
        (lambda m: draw_circle(m, front[0], front[1], r, int(round(t_ring))),
         np.array(_DARK), 'plain'),
    ]
    for p, q in bars:
        parts.append(
            (lambda m, p=p, q=q: draw_line(m, p[0], p[1], q[0], q[1], t), base,
             tex))
    parts.append(
        (lambda m: draw_line(m, seat[0] - 0.07 * length, seat[1], seat[
            0] + 0.07 * length, seat[1], t + 1), np.array(_DARK), 'plain'))
    return parts


#: The parts of one object of each class (see the functions above).
CLASS_PARTS: Dict[str, Callable[..., List[Part]]] = {
    'person': _person_parts,
    'rider': _rider_parts,
    'car': _car_parts,
    'truck': _truck_parts,
    'bus': _bus_parts,
    'train': _train_parts,
    'motorcycle': _motorcycle_parts,
    'bicycle': _bicycle_parts,
}
