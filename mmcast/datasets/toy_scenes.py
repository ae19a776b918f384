# Copyright (c) mmcast contributors. All rights reserved.
"""Procedural toy street scenes in the Cityscapes layout.

A deterministic generator of small street-like images for instance
segmentation with the 8 Cityscapes *thing* classes, written exactly like the
real Cityscapes so that MMDetection's converter
(``tools/dataset_converters/cityscapes.py``), :class:`CityscapesDataset` and
:class:`CityScapesMetric` (cityscapesscripts) run on it unchanged::

    <out>/leftImg8bit/<split>/<city>/<city>_<seq>_000019_leftImg8bit.png
    <out>/gtFine/<split>/<city>/<city>_<seq>_000019_gtFine_instanceIds.png
    <out>/gtFine/<split>/<city>/<city>_<seq>_000019_gtFine_labelIds.png
    <out>/gtFine/<split>/<city>/<city>_<seq>_000019_gtFine_color.png
    <out>/gtFine/<split>/<city>/<city>_<seq>_000019_gtFine_polygons.json
    <out>/annotations/instancesonly_filtered_gtFine_<split>.json
    <out>/lists/<split>.txt          (one image stem a line)
    <out>/toy_meta.json              (generation arguments; written last)

Every class has its own shape, colour family and texture (a person is a thin
striped ellipse with a head, a rider a dotted person on a two-wheeler, a car a
rounded box with a cabin and wheels, a truck a cab plus a chequered cargo box,
a bus a long box with a window strip, a train a very long striped box, a
motorcycle two solid wheels and a thick body, a bicycle two thin rings and a
thin frame), so that a tiny randomly initialised Mask2Former learns them on a
CPU in minutes. Objects stand on a road below a sky/skyline background; the
nearer ones are drawn later and occlude the farther ones. The instance masks
are the *visible* parts; an object left with fewer than ``min_visible_px``
visible pixels is removed from the scene altogether (not drawn, not
annotated).

The ``'source'`` style is a domain-shifted corpus (hue-shifted, less saturated
palette, dusk sky over hills and a dirt road, bigger objects, more noise, its
own seed stream and city names) for pre-training a stand-in "foundation"
teacher whose zero-shot accuracy on the ``'target'`` style is non-trivial but
imperfect.

Every image draws from its own random stream, keyed by ``(seed, style,
split, index)``: a run is byte-for-byte reproducible, and image ``i`` of a
split does not depend on how many images the other splits have.
"""
import colorsys
import json
import os
import os.path as osp
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pycocotools.mask as maskUtils

THING_CLASSES: Tuple[str, ...] = ('person', 'rider', 'car', 'truck', 'bus',
                                  'train', 'motorcycle', 'bicycle')
#: Cityscapes label ids (``cityscapesscripts.helpers.labels``), not train ids.
LABEL_IDS: Dict[str, int] = {
    'road': 7,
    'building': 11,
    'vegetation': 21,
    'sky': 23,
    'person': 24,
    'rider': 25,
    'car': 26,
    'truck': 27,
    'bus': 28,
    'train': 31,
    'motorcycle': 32,
    'bicycle': 33,
}
#: Cityscapes colours of the labels above (for ``*_gtFine_color.png``).
LABEL_COLORS: Dict[int, Tuple[int, int, int]] = {
    7: (128, 64, 128),
    11: (70, 70, 70),
    21: (107, 142, 35),
    23: (70, 130, 180),
    24: (220, 20, 60),
    25: (255, 0, 0),
    26: (0, 0, 142),
    27: (0, 0, 70),
    28: (0, 60, 100),
    31: (0, 80, 100),
    32: (0, 0, 230),
    33: (119, 11, 32),
}
#: The ``categories`` of MMDetection's Cityscapes converter, in its order.
CATEGORIES: List[dict] = [
    dict(id=LABEL_IDS[name], name=name) for name in THING_CLASSES
]
SPLITS: Tuple[str, ...] = ('train', 'val', 'test')
STYLES: Tuple[str, ...] = ('target', 'source')
WORLDS: Tuple[str, ...] = ('streets', 'tabletop', 'cells')
FRAME_NB = 19  # the annotated frame of every Cityscapes snippet
META_FILE = 'toy_meta.json'
MIN_IMAGE_SIZE = 32
MAX_CITIES = 8
COCO_JSON_TMPL = 'instancesonly_filtered_gtFine_{}.json'


@dataclass(frozen=True)
class ToyStyle:
    """The look of one corpus.

    Args:
        name (str): ``'target'`` or ``'source'``.
        seed_key (int): Keys the random streams of this style.
        hue_shift (float): Added to every object hue, in degrees.
        sat_scale (float): Multiplies every object saturation.
        size_range (tuple[float, float]): Object scale ``u`` as a share of
            the image height (a person is ~1.15 u tall, a bus 3.2 u long).
        sky (tuple): Sky colours (RGB) at the top and at the horizon.
        skyline (str): ``'buildings'`` (label building) or ``'hills'``
            (label vegetation).
        road (tuple[int, int, int]): Road colour (RGB).
        lane_marks (bool): Whether the road has dashed white lane marks.
        noise_sigma (float): Std of the per-pixel Gaussian sensor noise.
        cities (dict): Fake city names per split (lower-case letters only:
            cityscapesscripts splits file names on ``'_'``).
    """
    name: str
    seed_key: int
    hue_shift: float
    sat_scale: float
    size_range: Tuple[float, float]
    sky: Tuple[Tuple[int, int, int], Tuple[int, int, int]]
    skyline: str
    road: Tuple[int, int, int]
    lane_marks: bool
    noise_sigma: float
    cities: Dict[str, Tuple[str, ...]] = field(default_factory=dict)


TOY_STYLES: Dict[str, ToyStyle] = {
    'target':
    ToyStyle(
        name='target',
        seed_key=0,
        hue_shift=0.0,
        sat_scale=1.0,
        size_range=(0.30, 0.45),
        sky=((105, 155, 215), (195, 218, 240)),
        skyline='buildings',
        road=(92, 92, 98),
        lane_marks=True,
        noise_sigma=5.0,
        cities=dict(
            train=('toyville', 'mockburg', 'pixelton', 'fakefurt', 'stubhaven',
                   'shimcity', 'proxyport', 'dummydorf'),
            val=('testham', 'evalsby', 'checkwick', 'probeford', 'auditon',
                 'gaugeburg', 'metricton', 'scoreville'),
            test=('holdoutia', 'blindburg', 'sealedham', 'hiddenby', 'veilton',
                  'maskford', 'coverwick', 'shadeport'))),
    'source':
    ToyStyle(
        name='source',
        seed_key=1,
        hue_shift=28.0,
        sat_scale=0.75,
        size_range=(0.38, 0.58),
        sky=((72, 52, 112), (232, 146, 96)),
        skyline='hills',
        road=(118, 88, 70),
        lane_marks=False,
        noise_sigma=9.0,
        cities=dict(
            train=('farland', 'otherby', 'yonderton', 'elsewick', 'remotia',
                   'distburg', 'outerham', 'farport'),
            val=('nearland', 'besideby', 'adjaton', 'flankwick', 'sideburg',
                 'borderham', 'edgeton', 'rimport'),
            test=('awayland', 'aparton', 'asideby', 'offwick', 'outburg',
                  'exham', 'beyondton', 'pastport'))),
}

# Per class: base hue (deg), saturation, value, texture, sampling weight.
_CLASS_LOOK: Dict[str, Tuple[float, float, float, str, float]] = {
    'person': (350.0, 0.80, 0.85, 'vstripes', 1.2),
    'rider': (28.0, 0.90, 0.95, 'dots', 1.0),
    'car': (218.0, 0.75, 0.80, 'plain', 1.2),
    'truck': (120.0, 0.65, 0.65, 'checks', 0.9),
    'bus': (50.0, 0.85, 0.95, 'plain', 0.8),
    'train': (275.0, 0.35, 0.75, 'hstripes', 0.5),
    'motorcycle': (310.0, 0.80, 0.80, 'plain', 1.0),
    'bicycle': (172.0, 0.80, 0.70, 'plain', 1.0),
}
# Object scale (in units of u): height for person/rider, length otherwise.
_CLASS_SIZE: Dict[str, float] = {
    'person': 1.15,
    'rider': 1.2,
    'car': 1.8,
    'truck': 2.4,
    'bus': 3.2,
    'train': 5.0,
    'motorcycle': 1.25,
    'bicycle': 1.2,
}
_LARGE = ('truck', 'bus', 'train')  # at most two of these per image
_SPLIT_KEYS = {'train': 0, 'val': 1, 'test': 2}
_DARK = (38.0, 38.0, 42.0)
_GLASS = (70.0, 84.0, 104.0)
_LIGHT_GLASS = (170.0, 200.0, 220.0)
_SKIN = (228.0, 186.0, 156.0)


@dataclass
class ToyInstance:
    """One visible object of a scene.

    Args:
        label (str): Class name (one of :data:`THING_CLASSES`).
        instance_id (int): Value in the instanceIds map,
            ``label_id * 1000 + index`` (index counts per class from 0).
        mask (np.ndarray): Visible pixels, bool ``(H, W)``.
    """
    label: str
    instance_id: int
    mask: np.ndarray

    @property
    def label_id(self) -> int:
        """Cityscapes label id of the class."""
        return LABEL_IDS[self.label]

    @property
    def area(self) -> int:
        """Number of visible pixels."""
        return int(self.mask.sum())


@dataclass
class ToyScene:
    """A rendered scene.

    Args:
        image (np.ndarray): RGB image, uint8 ``(H, W, 3)``.
        label_ids (np.ndarray): Cityscapes label ids, uint8 ``(H, W)``.
        instance_ids (np.ndarray): Cityscapes instance ids, uint16
            ``(H, W)``: the label id on stuff pixels,
            ``label_id * 1000 + index`` on thing pixels.
        instances (list[ToyInstance]): Visible objects in drawing order
            (farthest first).
    """
    image: np.ndarray
    label_ids: np.ndarray
    instance_ids: np.ndarray
    instances: List[ToyInstance]


# --------------------------------------------------------------------------
# drawing helpers (cv2, no anti-aliasing: masks stay exact)
# --------------------------------------------------------------------------


def _pt(x: float, y: float) -> Tuple[int, int]:
    return int(round(x)), int(round(y))


def _ellipse(m: np.ndarray,
             cx: float,
             cy: float,
             ax: float,
             ay: float,
             angle: float = 0.0) -> None:
    cv2.ellipse(m, _pt(cx,
                       cy), (max(1, int(round(ax))), max(1, int(round(ay)))),
                angle, 0, 360, 1, -1, cv2.LINE_8)


def _circle(m: np.ndarray,
            cx: float,
            cy: float,
            r: float,
            thickness: int = -1) -> None:
    cv2.circle(m, _pt(cx, cy), max(1, int(round(r))), 1, thickness, cv2.LINE_8)


def _rect(m: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> None:
    xa, xb = sorted((x0, x1))
    ya, yb = sorted((y0, y1))
    cv2.rectangle(m, _pt(xa, ya), _pt(xb, yb), 1, -1, cv2.LINE_8)


def _round_rect(m: np.ndarray, x0: float, y0: float, x1: float, y1: float,
                r: float) -> None:
    xa, xb = sorted((x0, x1))
    ya, yb = sorted((y0, y1))
    r = max(0.0, min(r, (xb - xa) / 2, (yb - ya) / 2))
    _rect(m, xa + r, ya, xb - r, yb)
    _rect(m, xa, ya + r, xb, yb - r)
    if r >= 1:
        for cx in (xa + r, xb - r):
            for cy in (ya + r, yb - r):
                _circle(m, cx, cy, r)


def _poly(m: np.ndarray, pts: Sequence[Tuple[float, float]]) -> None:
    arr = np.array([_pt(x, y) for x, y in pts], dtype=np.int32)
    cv2.fillPoly(m, [arr], 1, cv2.LINE_8)


def _line(m: np.ndarray, x0: float, y0: float, x1: float, y1: float,
          thickness: float) -> None:
    cv2.line(m, _pt(x0, y0), _pt(x1, y1), 1, max(1, int(round(thickness))),
             cv2.LINE_8)


def _hsv(hue: float, sat: float, val: float) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb((hue % 360.0) / 360.0,
                                  float(np.clip(sat, 0, 1)),
                                  float(np.clip(val, 0, 1)))
    return np.array([r, g, b], dtype=np.float32) * 255.0


def _smooth_noise(rng: np.random.Generator, height: int, width: int,
                  cells: int, amplitude: float) -> np.ndarray:
    """Low-frequency noise, ``(H, W)`` float32 in about ``±amplitude``."""
    ch = max(2, cells * height // max(height, width) + 1)
    cw = max(2, cells * width // max(height, width) + 1)
    grid = rng.uniform(-amplitude, amplitude, (ch, cw)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR)


# A part of an object: (draw function onto a uint8 mask, RGB colour, texture).
_Part = Tuple[Callable[[np.ndarray], None], np.ndarray, str]


class _Painter:
    """Paints textured parts of one object onto full-size canvases."""

    def __init__(self, height: int, width: int, period: int, phase: int):
        self.height, self.width = height, width
        self.yy, self.xx = np.mgrid[0:height, 0:width]
        self.period = max(2, period)
        self.phase = phase
        self.mask = np.zeros((height, width), dtype=bool)
        self.rgb = np.zeros((height, width, 3), dtype=np.float32)

    def paint(self, draw: Callable[[np.ndarray], None], colour: np.ndarray,
              texture: str) -> None:
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


# --------------------------------------------------------------------------
# the 8 thing classes; (cx, yb) = bottom centre, d = facing (+1 right)
# --------------------------------------------------------------------------


def _person_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
                  tex: str, rng: np.random.Generator) -> List[_Part]:
    h = _CLASS_SIZE['person'] * u
    legs = _hsv(rng.uniform(200, 240), 0.35, rng.uniform(0.2, 0.35))
    t_leg = max(2.0, 0.09 * h)
    t_arm = max(2.0, 0.06 * h)
    return [
        (lambda m: _line(m, cx - 0.08 * h, yb, cx - 0.04 * h, yb - 0.46 * h,
                         t_leg), legs, 'plain'),
        (lambda m: _line(m, cx + 0.08 * h, yb, cx + 0.04 * h, yb - 0.46 * h,
                         t_leg), legs, 'plain'),
        (lambda m: _line(m, cx - 0.13 * h, yb - 0.76 * h, cx - 0.2 * h, yb -
                         0.47 * h, t_arm), base * 0.8, 'plain'),
        (lambda m: _line(m, cx + 0.13 * h, yb - 0.76 * h, cx + 0.2 * h, yb -
                         0.47 * h, t_arm), base * 0.8, 'plain'),
        (lambda m: _ellipse(m, cx, yb - 0.62 * h, 0.17 * h, 0.25 * h), base,
         tex),
        (lambda m: _circle(m, cx, yb - 0.93 * h, 0.1 * h), np.array(_SKIN),
         'plain'),
    ]


def _rider_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
                 tex: str, rng: np.random.Generator) -> List[_Part]:
    h = _CLASS_SIZE['rider'] * u
    r = 0.16 * h
    xr, xf = cx - d * 0.33 * h, cx + d * 0.33 * h
    yw = yb - r
    t_ring = max(2.0, 0.05 * h)
    t_frame = max(2.0, 0.06 * h)
    frame = base * 0.55
    helmet = _hsv(rng.uniform(0, 360), 0.2, 0.95)
    return [
        (lambda m: _circle(m, xr, yw, r, int(round(t_ring))), np.array(_DARK),
         'plain'),
        (lambda m: _circle(m, xf, yw, r, int(round(t_ring))), np.array(_DARK),
         'plain'),
        (lambda m: _poly(m, [(xr, yw), (cx, yb - 0.42 * h), (xf, yw),
                             (cx, yw)]), frame, 'plain'),
        (lambda m: _line(m, cx, yb - 0.42 * h, cx + d * 0.25 * h, yb - 0.55 *
                         h, t_frame), frame, 'plain'),
        (lambda m: _line(m, cx - d * 0.02 * h, yb - 0.45 * h, cx + d * 0.14 *
                         h, yb - 0.24 * h, max(2.0, 0.08 * h)),
         _hsv(220, 0.3, 0.3), 'plain'),
        (lambda m: _ellipse(m, cx - d * 0.03 * h, yb - 0.62 * h, 0.13 * h, 0.2
                            * h, d * 18.0), base, tex),
        (lambda m: _line(m, cx + d * 0.03 * h, yb - 0.72 * h, cx + d * 0.24 *
                         h, yb - 0.56 * h, max(2.0, 0.06 * h)), base * 0.8,
         'plain'),
        (lambda m: _circle(m, cx + d * 0.04 * h, yb - 0.88 * h, 0.095 * h),
         helmet, 'plain'),
    ]


def _car_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
               tex: str, rng: np.random.Generator) -> List[_Part]:
    length = _CLASS_SIZE['car'] * u
    hc = 0.42 * length

    def x(f: float) -> float:
        return cx + d * f * length

    parts: List[_Part] = [
        (lambda m: _round_rect(m, cx - length / 2, yb - 0.62 * hc, cx + length
                               / 2, yb - 0.12 * hc, 0.18 * hc), base, tex),
        (lambda m: _poly(m, [(x(-0.34), yb - 0.6 * hc),
                             (x(0.3), yb - 0.6 * hc), (x(0.15), yb - hc),
                             (x(-0.26), yb - hc)]), base, tex),
        (lambda m: _poly(m, [(x(-0.28), yb - 0.64 * hc),
                             (x(0.23), yb - 0.64 * hc),
                             (x(0.11), yb - 0.92 * hc),
                             (x(-0.22), yb - 0.92 * hc)]),
         np.array(_LIGHT_GLASS), 'plain'),
    ]
    for f in (-0.3, 0.3):
        parts.append((lambda m, f=f: _circle(m, x(f), yb - 0.2 * hc, 0.2 * hc),
                      np.array(_DARK), 'plain'))
        parts.append(
            (lambda m, f=f: _circle(m, x(f), yb - 0.2 * hc, 0.08 * hc),
             np.array((150.0, 150.0, 150.0)), 'plain'))
    return parts


def _truck_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
                 tex: str, rng: np.random.Generator) -> List[_Part]:
    length = _CLASS_SIZE['truck'] * u
    ht = 0.5 * length

    def x(f: float) -> float:
        return cx + d * f * length

    cargo = base * 0.6 + 80.0
    parts: List[_Part] = [
        (lambda m: _rect(m, x(-0.5), yb - 0.2 * ht, x(0.5), yb - 0.1 * ht),
         np.array(_DARK), 'plain'),
        (lambda m: _rect(m, x(-0.5), yb - ht, x(0.2), yb - 0.18 * ht), cargo,
         tex),
        (lambda m: _round_rect(m, x(0.24), yb - 0.7 * ht, x(0.5), yb - 0.15 *
                               ht, 0.06 * ht), base, 'plain'),
        (lambda m: _rect(m, x(0.31), yb - 0.64 * ht, x(0.46), yb - 0.44 * ht),
         np.array(_LIGHT_GLASS), 'plain'),
    ]
    for f in (-0.38, -0.2, 0.37):
        parts.append(
            (lambda m, f=f: _circle(m, x(f), yb - 0.12 * ht, 0.12 * ht),
             np.array(_DARK), 'plain'))
    return parts


def _bus_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
               tex: str, rng: np.random.Generator) -> List[_Part]:
    length = _CLASS_SIZE['bus'] * u
    hb = 0.36 * length

    def x(f: float) -> float:
        return cx + d * f * length

    parts: List[_Part] = [
        (lambda m: _round_rect(m, cx - length / 2, yb - hb, cx + length / 2, yb
                               - 0.1 * hb, 0.1 * hb), base, tex),
        (lambda m: _rect(m, cx - length / 2, yb - 0.36 * hb, cx + length / 2,
                         yb - 0.27 * hb), base * 0.55, 'plain'),
        # the window strip: a dark band cut by thin pillars
        (lambda m: _rect(m, cx - 0.46 * length, yb - 0.86 * hb, cx + 0.46 *
                         length, yb - 0.52 * hb), np.array(_GLASS), 'plain'),
    ]
    n_win = 7
    step = 0.92 * length / n_win
    for k in range(1, n_win):
        xp = cx - 0.46 * length + k * step
        parts.append(
            (lambda m, xp=xp: _rect(m, xp - 0.012 * length, yb - 0.86 * hb, xp
                                    + 0.012 * length, yb - 0.52 * hb), base,
             'plain'))
    for f in (-0.33, 0.33):
        parts.append(
            (lambda m, f=f: _circle(m, x(f), yb - 0.12 * hb, 0.13 * hb),
             np.array(_DARK), 'plain'))
    return parts


def _train_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
                 tex: str, rng: np.random.Generator) -> List[_Part]:
    length = _CLASS_SIZE['train'] * u
    htr = 0.26 * length
    x0, x1 = cx - length / 2, cx + length / 2
    parts: List[_Part] = [
        (lambda m: _line(m, cx - 0.1 * length, yb - htr, cx, yb - 1.25 * htr,
                         max(1.0, 0.03 * htr)), np.array(_DARK), 'plain'),
        (lambda m: _round_rect(m, x0, yb - htr, x1, yb - 0.1 * htr, 0.25 * htr
                               ), base, tex),
        (lambda m: _rect(m, x0 + 0.05 * length, yb - 0.14 * htr, x1 - 0.05 *
                         length, yb), np.array(_DARK), 'plain'),
    ]
    n_win = 12
    for k in range(n_win):
        xw = x0 + (k + 0.5) * length / n_win
        parts.append(
            (lambda m, xw=xw: _rect(m, xw - 0.018 * length, yb - 0.82 * htr, xw
                                    + 0.018 * length, yb - 0.62 * htr),
             np.array(_LIGHT_GLASS), 'plain'))
    return parts


def _motorcycle_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
                      tex: str, rng: np.random.Generator) -> List[_Part]:
    length = _CLASS_SIZE['motorcycle'] * u
    hm = 0.55 * length
    r = 0.27 * hm

    def x(f: float) -> float:
        return cx + d * f * length

    parts: List[_Part] = []
    for f in (-0.34, 0.34):
        parts.append((lambda m, f=f: _circle(m, x(f), yb - r, r),
                      np.array(_DARK), 'plain'))
        parts.append((lambda m, f=f: _circle(m, x(f), yb - r, 0.35 * r),
                      np.array((160.0, 160.0, 165.0)), 'plain'))
    parts += [
        (lambda m: _rect(m, x(-0.1), yb - 0.5 * hm, x(0.12), yb - 0.22 * hm),
         np.array((90.0, 90.0, 95.0)), 'plain'),
        (lambda m: _ellipse(m, cx, yb - 0.58 * hm, 0.32 * length, 0.2 * hm),
         base, tex),
        (lambda m: _line(m, x(-0.3), yb - 0.76 * hm, x(-0.02), yb - 0.76 * hm,
                         max(2.0, 0.12 * hm)), np.array(_DARK), 'plain'),
        (lambda m: _line(m, x(0.2), yb - 0.5 * hm, x(0.3), yb - 1.0 * hm,
                         max(2.0, 0.09 * hm)), base * 0.8, 'plain'),
    ]
    return parts


def _bicycle_parts(cx: float, yb: float, u: float, d: int, base: np.ndarray,
                   tex: str, rng: np.random.Generator) -> List[_Part]:
    length = _CLASS_SIZE['bicycle'] * u
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
    parts: List[_Part] = [
        (lambda m: _circle(m, rear[0], rear[1], r, int(round(t_ring))),
         np.array(_DARK), 'plain'),
        (lambda m: _circle(m, front[0], front[1], r, int(round(t_ring))),
         np.array(_DARK), 'plain'),
    ]
    for p, q in bars:
        parts.append((lambda m, p=p, q=q: _line(m, p[0], p[1], q[0], q[1], t),
                      base, tex))
    parts.append((lambda m: _line(m, seat[0] - 0.07 * length, seat[1], seat[
        0] + 0.07 * length, seat[1], t + 1), np.array(_DARK), 'plain'))
    return parts


_CLASS_PARTS = {
    'person': _person_parts,
    'rider': _rider_parts,
    'car': _car_parts,
    'truck': _truck_parts,
    'bus': _bus_parts,
    'train': _train_parts,
    'motorcycle': _motorcycle_parts,
    'bicycle': _bicycle_parts,
}

# --------------------------------------------------------------------------
# scenes
# --------------------------------------------------------------------------


def _render_background(
        height: int, width: int, rng: np.random.Generator,
        style: ToyStyle) -> Tuple[np.ndarray, np.ndarray, float]:
    """Sky, skyline and road. Returns ``(rgb float32, label ids, horizon)``."""
    yy = np.arange(height, dtype=np.float32)[:, None, None]
    horizon = float(rng.uniform(0.36, 0.5) * height)
    labels = np.full((height, width), LABEL_IDS['sky'], dtype=np.uint8)
    # sky: vertical gradient
    top, bottom = (np.array(c, dtype=np.float32) for c in style.sky)
    t = np.clip(yy / max(horizon, 1.0), 0, 1)
    rgb = np.broadcast_to(top * (1 - t) + bottom * t,
                          (height, width, 3)).copy()
    rgb += _smooth_noise(rng, height, width, 6, 8.0)[..., None]

    skyline = np.zeros((height, width), dtype=np.uint8)
    if style.skyline == 'buildings':
        sky_label = LABEL_IDS['building']
        x = -float(rng.uniform(0, 0.1 * width))
        while x < width:
            bw = float(rng.uniform(0.1, 0.28) * width)
            top_y = horizon - float(rng.uniform(0.12, 0.36) * height)
            m = np.zeros((height, width), dtype=np.uint8)
            _rect(m, x, top_y, x + bw - 1, horizon)
            colour = _hsv(
                rng.uniform(20, 50), rng.uniform(0.0, 0.25),
                rng.uniform(0.45, 0.8))
            mb = m.astype(bool)
            rgb[mb] = colour
            # a grid of darker windows
            p = max(3, int(round(0.05 * height)))
            win = np.zeros((height, width), dtype=np.uint8)
            for wy in np.arange(top_y + p * 0.6, horizon - p, p):
                for wx in np.arange(x + p * 0.6, x + bw - p, p):
                    _rect(win, wx, wy, wx + p * 0.45, wy + p * 0.45)
            rgb[mb & win.astype(bool)] = colour * 0.55
            skyline |= m
            x += bw
    else:
        sky_label = LABEL_IDS['vegetation']
        xs = np.arange(width, dtype=np.float32)
        amp = rng.uniform(0.06, 0.16, 3) * height
        freq = rng.uniform(0.5, 3.0, 3) * 2 * np.pi / width
        phase = rng.uniform(0, 2 * np.pi, 3)
        ridge = horizon - 0.12 * height - (amp[:, None] * np.sin(
            freq[:, None] * xs[None] + phase[:, None])).sum(0) / 2
        m = (np.arange(height)[:, None] >= ridge[None]) & (
            np.arange(height)[:, None] <= horizon)
        colour = _hsv(rng.uniform(90, 140), 0.5, rng.uniform(0.3, 0.45))
        rgb[m] = colour
        rgb[m] += _smooth_noise(rng, height, width, 24, 25.0)[m][:, None]
        skyline = m.astype(np.uint8)
    labels[skyline.astype(bool)] = sky_label

    road = np.zeros((height, width), dtype=bool)
    road[int(round(horizon)):] = True
    ground = np.array(style.road, dtype=np.float32)
    shade = 0.85 + 0.3 * np.clip(
        (yy[:, :, 0] - horizon) / max(height - horizon, 1.0), 0, 1)
    rgb[road] = (ground[None, None] * shade[..., None] * np.ones(
        (1, width, 1), dtype=np.float32))[road]
    blotch = _smooth_noise(rng, height, width, 16,
                           10.0 if style.lane_marks else 22.0)
    rgb[road] += blotch[road][:, None]
    if style.lane_marks:
        ly = horizon + rng.uniform(0.45, 0.65) * (height - horizon)
        dash = max(4.0, 0.07 * width)
        lm = np.zeros((height, width), dtype=np.uint8)
        x = -float(rng.uniform(0, 2 * dash))
        while x < width:
            _rect(lm, x, ly, x + dash, ly + max(1.0, 0.02 * height))
            x += 2 * dash
        rgb[lm.astype(bool) & road] = 225.0
    labels[road] = LABEL_IDS['road']
    return rgb, labels, horizon


def _sample_classes(rng: np.random.Generator, num: int,
                    first: Optional[str]) -> List[str]:
    names = list(THING_CLASSES)
    weights = np.array([_CLASS_LOOK[n][4] for n in names])
    classes: List[str] = [first] if first is not None else []
    while len(classes) < num:
        name = names[rng.choice(len(names), p=weights / weights.sum())]
        if name in _LARGE and (sum(c in _LARGE for c in classes) >= 2 or
                               (name == 'train' and 'train' in classes)):
            continue
        classes.append(name)
    return classes


def render_scene(height: int,
                 width: int,
                 rng: np.random.Generator,
                 style: str = 'target',
                 first_class: Optional[str] = None,
                 max_instances: int = 6,
                 min_visible_px: int = 20) -> ToyScene:
    """Render one toy street scene.

    Args:
        height (int): Image height.
        width (int): Image width.
        rng (np.random.Generator): The random stream of this image.
        style (str): ``'target'`` or ``'source'``.
        first_class (str, optional): Class of the first sampled object (the
            others are drawn at random). Defaults to None.
        max_instances (int): 1 to ``max_instances`` objects are placed.
            Defaults to 6.
        min_visible_px (int): Objects with fewer visible pixels are removed.
            Defaults to 20.

    Returns:
        ToyScene: Image, label maps and the visible instances (at least one).
    """
    if style not in TOY_STYLES:
        raise ValueError(f'style must be one of {STYLES}, got {style!r}')
    cfg = TOY_STYLES[style]
    bg, stuff, horizon = _render_background(height, width, rng, cfg)
    y_lo, y_hi = horizon + 0.14 * height, 1.02 * height
    for _ in range(100):
        num = int(rng.integers(1, max_instances + 1))
        classes = _sample_classes(rng, num, first_class)
        objects = []
        for name in classes:
            yb = float(rng.uniform(y_lo, y_hi))
            near = (yb - y_lo) / (y_hi - y_lo)
            u = float(
                rng.uniform(*cfg.size_range)) * height * (0.8 + 0.4 * near)
            cx = float(rng.uniform(0.04, 0.96) * width)
            d = 1 if rng.random() < 0.5 else -1
            hue0, sat0, val0, tex, _ = _CLASS_LOOK[name]
            base = _hsv(hue0 + cfg.hue_shift + rng.normal(0, 7),
                        sat0 * cfg.sat_scale * rng.uniform(0.85, 1.1),
                        val0 * rng.uniform(0.85, 1.08))
            period = int(round(max(2.0, 0.07 * u * rng.uniform(0.8, 1.25))))
            phase = int(rng.integers(0, 2 * period))
            objects.append((yb, name, cx, u, d, base, tex, period, phase))
        objects.sort(key=lambda o: o[0])  # far (small yb) first
        layers = []
        for yb, name, cx, u, d, base, tex, period, phase in objects:
            painter = _Painter(height, width, period, phase)
            for draw, colour, texture in _CLASS_PARTS[name](cx, yb, u, d, base,
                                                            tex, rng):
                painter.paint(draw, np.asarray(colour, np.float32), texture)
            layers.append((name, painter.mask, painter.rgb))
        layers, visible = visible_layers(layers, min_visible_px)
        if layers:
            break
    else:  # pragma: no cover - practically unreachable
        raise RuntimeError('could not place a visible object')
    image, label_ids, instance_ids, instances = paint_layers(
        bg, stuff, layers, visible)
    image = image + rng.normal(0, cfg.noise_sigma, image.shape)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return ToyScene(image, label_ids, instance_ids, instances)


# An object drawn on a full-size canvas: (class name, mask bool (H, W),
# RGB float32 (H, W, 3)).
Layer = Tuple[str, np.ndarray, np.ndarray]


def visible_layers(layers: List[Layer], min_visible_px: int
                   ) -> Tuple[List[Layer], List[np.ndarray]]:
    """The objects left visible and their visible masks.

    ``layers`` are in drawing order (the last lies on top). An object with
    fewer than ``min_visible_px`` visible pixels is removed and the rest is
    recomputed, since a removed object uncovers what lies behind it.
    """
    while True:
        covered = np.zeros(layers[0][1].shape if layers else (0, 0),
                           dtype=bool)
        visible = [None] * len(layers)
        for i in range(len(layers) - 1, -1, -1):
            visible[i] = layers[i][1] & ~covered
            covered |= layers[i][1]
        keep = [v.sum() >= min_visible_px for v in visible]
        if all(keep):
            return layers, visible
        layers = [lay for lay, k in zip(layers, keep) if k]


def paint_layers(
    background: np.ndarray, stuff: np.ndarray, layers: List[Layer],
    visible: List[np.ndarray]
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[ToyInstance]]:
    """Paint the objects over the background (in place) and number them.

    Returns:
        tuple: the RGB float image ``(H, W, 3)``, the label ids and the
        instance ids ``(H, W)`` (``label_id * 1000 + index``, the index
        counting per class from 0) and the :class:`ToyInstance` s.
    """
    label_ids = stuff.copy()
    instance_ids = stuff.astype(np.uint16)
    instances: List[ToyInstance] = []
    counters: Dict[str, int] = {}
    for (name, mask, rgb), vis in zip(layers, visible):
        background[mask] = rgb[mask]
        index = counters.get(name, 0)
        counters[name] = index + 1
        inst_id = LABEL_IDS[name] * 1000 + index
        label_ids[vis] = LABEL_IDS[name]
        instance_ids[vis] = inst_id
        instances.append(ToyInstance(name, inst_id, vis))
    return background, label_ids, instance_ids, instances


def scene_rng(seed: int, style: str, split: str,
              index: int) -> np.random.Generator:
    """The random stream of image ``index`` of ``split`` in ``style``."""
    key = (TOY_STYLES[style].seed_key, _SPLIT_KEYS[split], int(index))
    return np.random.default_rng(
        np.random.SeedSequence(int(seed), spawn_key=key))


def image_stems(num: int, split: str, style: str,
                num_cities: int) -> List[Tuple[str, str]]:
    """``(city, stem)`` of the ``num`` images of a split, in order.

    Images are spread over the cities in contiguous blocks, numbered from 0
    within each city: ``<city>_<seq:06d>_000019``.
    """
    cities = TOY_STYLES[style].cities[split][:num_cities]
    out, seq = [], {}
    for i in range(num):
        city = cities[i * len(cities) // num]
        n = seq.get(city, 0)
        seq[city] = n + 1
        out.append((city, f'{city}_{n:06d}_{FRAME_NB:06d}'))
    return out


# --------------------------------------------------------------------------
# annotations and files
# --------------------------------------------------------------------------


def coco_annotations(instance_ids: np.ndarray) -> List[dict]:
    """Instance annotations of one instanceIds map, exactly as MMDetection's
    ``tools/dataset_converters/cityscapes.py`` (``load_img_info``) makes them:
    compressed RLE ``segmentation``, ``area`` and ``bbox`` from pycocotools,
    ordered by instance id."""
    annos = []
    for inst_id in np.unique(instance_ids[instance_ids >= 24]):
        label_id = inst_id // 1000 if inst_id >= 1000 else inst_id
        mask = np.asarray(instance_ids == inst_id, dtype=np.uint8, order='F')
        rle = maskUtils.encode(mask[:, :, None])[0]
        area = maskUtils.area(rle)
        bbox = maskUtils.toBbox(rle)
        rle['counts'] = rle['counts'].decode()
        annos.append(
            dict(
                iscrowd=int(inst_id < 1000),
                category_id=int(label_id),
                bbox=bbox.tolist(),
                area=area.tolist(),
                segmentation=rle))
    return annos


def _contours(mask: np.ndarray) -> List[List[List[int]]]:
    """Outer contours (>= 3 points) of a binary mask, as ``[[x, y], ...]``."""
    found, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c[:, 0, :].tolist() for c in found if len(c) >= 3]


def cityscapes_polygons(scene: ToyScene) -> dict:
    """The ``*_gtFine_polygons.json`` content of a scene.

    Stuff regions first, then the instances in drawing order; each polygon
    is an outer contour of a *visible* region (a region split in several
    parts gives several objects with the same label). As in Cityscapes,
    rasterising them in order approximates the label maps; the instanceIds
    png stays the reference.
    """
    objects = []
    for name in ('sky', 'building', 'vegetation', 'road'):
        m = scene.label_ids == LABEL_IDS[name]
        for poly in _contours(m):
            objects.append(dict(label=name, polygon=poly))
    for inst in scene.instances:
        for poly in _contours(inst.mask):
            objects.append(dict(label=inst.label, polygon=poly))
    height, width = scene.label_ids.shape
    return dict(imgHeight=height, imgWidth=width, objects=objects)


def _atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _png(arr: np.ndarray) -> bytes:
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.png', arr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover
        raise RuntimeError('PNG encoding failed')
    return buf.tobytes()


def _json_bytes(obj) -> bytes:
    return json.dumps(obj, sort_keys=True).encode('utf-8')


def write_scene(out_dir: str, split: str, city: str, stem: str,
                scene: ToyScene) -> None:
    """Write the image and the gtFine files of one scene."""
    img_dir = osp.join(out_dir, 'leftImg8bit', split, city)
    gt_dir = osp.join(out_dir, 'gtFine', split, city)
    _atomic_write(
        osp.join(img_dir, f'{stem}_leftImg8bit.png'), _png(scene.image))
    _atomic_write(
        osp.join(gt_dir, f'{stem}_gtFine_instanceIds.png'),
        _png(scene.instance_ids))
    _atomic_write(
        osp.join(gt_dir, f'{stem}_gtFine_labelIds.png'), _png(scene.label_ids))
    lut = np.zeros((256, 3), dtype=np.uint8)
    for label_id, colour in LABEL_COLORS.items():
        lut[label_id] = colour
    _atomic_write(
        osp.join(gt_dir, f'{stem}_gtFine_color.png'),
        _png(lut[scene.label_ids]))
    _atomic_write(
        osp.join(gt_dir, f'{stem}_gtFine_polygons.json'),
        _json_bytes(cityscapes_polygons(scene)))


def _prepare_out_dir(out_dir: str, meta: dict) -> None:
    """Refuse to write into a Cityscapes tree that is not a toy dataset;
    mark the folder as an (incomplete) toy dataset."""
    meta_path = osp.join(out_dir, META_FILE)
    if not osp.isfile(meta_path) and any(
            osp.isdir(osp.join(out_dir, d))
            for d in ('leftImg8bit', 'gtFine')):
        raise FileExistsError(
            f'{out_dir} already holds a leftImg8bit/gtFine tree that '
            f'make_toy_dataset did not write (no {META_FILE}); refusing to '
            'write into it')
    os.makedirs(out_dir, exist_ok=True)
    _atomic_write(meta_path, _json_bytes(dict(meta, complete=False)))


def _prune(out_dir: str, expected: set) -> None:
    """Remove files of earlier runs that this run did not write."""
    for top in ('leftImg8bit', 'gtFine'):
        for split in SPLITS:
            root = osp.join(out_dir, top, split)
            if not osp.isdir(root):
                continue
            for dirpath, _, filenames in os.walk(root, topdown=False):
                for name in filenames:
                    path = osp.join(dirpath, name)
                    if osp.relpath(path, out_dir) not in expected:
                        os.remove(path)
                if not os.listdir(dirpath):
                    os.rmdir(dirpath)
    for split in SPLITS:
        for path in (osp.join(out_dir, 'annotations',
                              COCO_JSON_TMPL.format(split)),
                     osp.join(out_dir, 'lists', f'{split}.txt')):
            if osp.isfile(path) and osp.relpath(path, out_dir) not in expected:
                os.remove(path)


def _world(name: str) -> Tuple[Callable[..., ToyScene], Tuple[str, ...]]:
    """The scene renderer of a toy world and the labels it draws."""
    if name == 'streets':
        return render_scene, THING_CLASSES
    if name == 'tabletop':
        from .toy_tabletop import TABLETOP_CLASSES, render_tabletop_scene
        return render_tabletop_scene, TABLETOP_CLASSES
    if name == 'cells':
        from .toy_cells import CELLS_CLASSES, render_cells_scene
        return render_cells_scene, CELLS_CLASSES
    raise ValueError(f'world must be one of {WORLDS}, got {name!r}')


def world_max_instances(world: str) -> int:
    """The objects a toy world places per image at most, by default."""
    if world == 'cells':
        from .toy_cells import DEFAULT_MAX_CELLS
        return DEFAULT_MAX_CELLS
    return 6


def make_toy_dataset(out_dir: str,
                     num_train: int = 200,
                     num_val: int = 50,
                     height: int = 96,
                     width: int = 192,
                     seed: int = 0,
                     style: str = 'target',
                     num_cities: int = 2,
                     num_test: int = 0,
                     max_instances: Optional[int] = None,
                     min_visible_px: int = 20,
                     show_progress: bool = True,
                     world: str = 'streets') -> Dict[str, dict]:
    """Generate a toy dataset in the Cityscapes layout.

    Args:
        out_dir (str): Dataset root (``data_root``).
        num_train (int): Number of train images (>= 1). Defaults to 200.
        num_val (int): Number of val images (>= 1). Defaults to 50.
        height (int): Image height (>= 32). Defaults to 96.
        width (int): Image width (>= 32). Defaults to 192.
        seed (int): Non-negative seed. Defaults to 0.
        style (str): ``'target'`` or ``'source'``. Defaults to ``'target'``.
        num_cities (int): Cities per split, 1 to 8. Defaults to 2.
        num_test (int): Number of test images (>= 0). MMDetection's
            converter CLI (``tools/dataset_converters/cityscapes.py``) asserts
            that a test split exists; give ``num_test > 0`` to run it as is.
            Defaults to 0.
        max_instances (int, optional): Objects placed per image: 1 to this
            (cells: a quarter of it to this). Defaults to 6 (cells: 200,
            :data:`~mmcast.datasets.toy_cells.DEFAULT_MAX_CELLS`).
        min_visible_px (int): Objects with fewer visible pixels are removed.
            Defaults to 20.
        show_progress (bool): Show an mmengine progress bar. Defaults to True.
        world (str): ``'streets'`` (the scenes of this module),
            ``'tabletop'`` (:mod:`mmcast.datasets.toy_tabletop`: 5 other
            classes, seen from above) or ``'cells'``
            (:mod:`mmcast.datasets.toy_cells`: 50 to 200 touching cells of
            2 classes, grayscale). Defaults to ``'streets'``.

    Returns:
        dict[str, dict]: Per written split: ``stems`` (list of str),
        ``ann_file`` (path of the COCO json), ``num_instances`` and
        ``class_counts`` (instances per class name).
    """
    counts = dict(train=num_train, val=num_val, test=num_test)
    if max_instances is None:
        max_instances = world_max_instances(world)
    for name, value in (('num_train', num_train), ('num_val', num_val),
                        ('max_instances', max_instances), ('num_cities',
                                                           num_cities)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f'{name} must be a positive integer, got '
                             f'{value!r}')
    for name, value in (('num_test', num_test), ('seed', seed),
                        ('min_visible_px', min_visible_px)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f'{name} must be a non-negative integer, got '
                             f'{value!r}')
    for name, value in (('height', height), ('width', width)):
        if not isinstance(value, (int, np.integer)) or value < MIN_IMAGE_SIZE:
            raise ValueError(f'{name} must be an integer >= {MIN_IMAGE_SIZE}, '
                             f'got {value!r}')
    if num_cities > MAX_CITIES:
        raise ValueError(f'num_cities must be at most {MAX_CITIES}, got '
                         f'{num_cities}')
    if style not in TOY_STYLES:
        raise ValueError(f'style must be one of {STYLES}, got {style!r}')
    render, classes = _world(world)

    meta = dict(
        generator='mmcast.datasets.toy_scenes',
        version=1,
        num_train=int(num_train),
        num_val=int(num_val),
        num_test=int(num_test),
        height=int(height),
        width=int(width),
        seed=int(seed),
        style=style,
        num_cities=int(num_cities),
        max_instances=int(max_instances),
        min_visible_px=int(min_visible_px),
        thing_classes=list(THING_CLASSES))
    if world != 'streets':  # (the bundled data's meta stays as it was)
        meta['world'] = world
    _prepare_out_dir(out_dir, meta)

    progress = None
    if show_progress:
        from mmengine.utils import ProgressBar
        progress = ProgressBar(sum(counts.values()))
    expected = {META_FILE}
    summary: Dict[str, dict] = {}
    for split in SPLITS:
        num = counts[split]
        if num == 0:
            continue
        images, annotations = [], []
        class_counts = {name: 0 for name in THING_CLASSES}
        stems = image_stems(num, split, style, num_cities)
        offset = _SPLIT_KEYS[split] * 3
        for index, (city, stem) in enumerate(stems):
            scene = render(
                height,
                width,
                scene_rng(seed, style, split, index),
                style=style,
                first_class=classes[(index + offset) % len(classes)],
                max_instances=max_instances,
                min_visible_px=min_visible_px)
            write_scene(out_dir, split, city, stem, scene)
            for suffix in ('leftImg8bit.png', ):
                expected.add(
                    osp.join('leftImg8bit', split, city, f'{stem}_{suffix}'))
            for suffix in ('instanceIds.png', 'labelIds.png', 'color.png',
                           'polygons.json'):
                expected.add(
                    osp.join('gtFine', split, city, f'{stem}_gtFine_{suffix}'))
            img_id = len(images)
            images.append(
                dict(
                    file_name=f'{city}/{stem}_leftImg8bit.png',
                    height=height,
                    width=width,
                    segm_file=f'{city}/{stem}_gtFine_labelIds.png',
                    id=img_id))
            for anno in coco_annotations(scene.instance_ids):
                anno['image_id'] = img_id
                anno['id'] = len(annotations)
                annotations.append(anno)
            for inst in scene.instances:
                class_counts[inst.label] += 1
            if progress is not None:
                progress.update()
        coco = dict(images=images, categories=CATEGORIES)
        if annotations:  # the converter drops an empty list
            coco['annotations'] = annotations
        ann_file = osp.join(out_dir, 'annotations',
                            COCO_JSON_TMPL.format(split))
        _atomic_write(ann_file, _json_bytes(coco))
        list_file = osp.join(out_dir, 'lists', f'{split}.txt')
        _atomic_write(list_file,
                      ''.join(f'{stem}\n' for _, stem in stems).encode())
        expected.add(osp.relpath(ann_file, out_dir))
        expected.add(osp.relpath(list_file, out_dir))
        summary[split] = dict(
            stems=[stem for _, stem in stems],
            ann_file=ann_file,
            num_instances=len(annotations),
            class_counts=class_counts)
    if progress is not None:
        progress.file.write('\n')
    _prune(out_dir, expected)
    _atomic_write(
        osp.join(out_dir, META_FILE),
        _json_bytes(
            dict(
                meta,
                complete=True,
                num_instances={
                    k: v['num_instances']
                    for k, v in summary.items()
                })))
    return summary
