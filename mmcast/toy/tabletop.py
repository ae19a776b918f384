# Copyright (c) mmcast contributors. All rights reserved.
"""A second toy world: objects on a table seen from above.

The bundled toy (:mod:`mmcast.toy.streets`, world ``'streets'``) is a
side view of 8 upright classes, one size law (nearer is bigger), a
horizon and occlusion by depth. This world changes every one of those, so
that a recipe tuned on the streets is tried on data it was not tuned to:

- **5 classes, other shapes**: a *coin* (disc, concentric rings), a *leaf*
  (pointed almond with veins), a *plate* (large ellipse with a rim), a
  *pencil* (thin bar with a sharpened tip) and a *star* (five points).
- **rotation and scale**: every object has a random in-plane angle; its size
  spans a factor of ~3 within a class, times a per-image zoom.
- **colours that overlap between classes** (a leaf and a pencil can both be
  orange, a coin and a star both gold): shape and texture decide.
- **other textures**: rings, veins, speckle, a rim, a two-tone bar.
- **stacking, not depth**: objects lie on each other in random order; the
  instance masks are the visible parts, as in the streets.
- **domain shift**: the ``'target'`` table is wood (grain along a random
  direction); the ``'source'`` corpus is a tiled floor under a cold cast,
  with hue-shifted, less saturated objects, bigger on average, more sensor
  noise and a slight blur.

The files are the streets' Cityscapes layout, written by
:func:`mmcast.toy.worlds.make_toy_dataset` with ``world='tabletop'``, so
the toy configs, CityscapesDataset and both metrics read it unchanged. For
that the 5 classes are stored under 5 of the toy's Cityscapes thing labels
(:data:`STORED_AS`; the models keep the toy's 8 outputs, and COCO's and
Cityscapes' AP average over the classes with ground truth), and the table
is labelled ``road``.
"""
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np

from .scene import LABEL_IDS, ToyScene, paint_layers, visible_layers

#: This world's classes, by the Cityscapes thing label each is stored as.
STORED_AS: Dict[str, str] = {
    'person': 'coin',
    'rider': 'leaf',
    'car': 'plate',
    'truck': 'pencil',
    'bus': 'star',
}
TABLETOP_CLASSES: Tuple[str, ...] = tuple(STORED_AS)
# Per class: size as a share of the image height (min, max of the longest
# side) and sampling weight.
_CLASS_SIZE: Dict[str, Tuple[float, float, float]] = {
    'person': (0.10, 0.24, 1.3),
    'rider': (0.18, 0.42, 1.2),
    'car': (0.36, 0.70, 0.6),
    'truck': (0.35, 0.80, 1.0),
    'bus': (0.16, 0.40, 1.0),
}
# Hue families per class (degrees; 'silver' and 'white' are nearly grey);
# every family is shared by at least two classes.
_HUES = {'gold': 45.0, 'orange': 25.0, 'green': 110.0, 'red': 355.0,
         'blue': 215.0}
_CLASS_HUES: Dict[str, Tuple[str, ...]] = {
    'person': ('gold', 'silver', 'orange'),
    'rider': ('green', 'orange', 'red'),
    'car': ('white', 'blue', 'gold'),
    'truck': ('orange', 'blue', 'red', 'green'),
    'bus': ('gold', 'red', 'blue', 'silver'),
}


def _colour(rng: np.random.Generator, name: str, hue_shift: float,
            sat_scale: float) -> np.ndarray:
    """An RGB float32 colour of one of the class's hue families."""
    family = _CLASS_HUES[name][rng.integers(len(_CLASS_HUES[name]))]
    if family == 'silver':
        hue, sat, val = 210.0, 0.08, rng.uniform(0.6, 0.85)
    elif family == 'white':
        hue, sat, val = rng.uniform(0, 360), 0.06, rng.uniform(0.85, 0.97)
    else:
        hue = _HUES[family] + rng.normal(0, 8)
        sat, val = rng.uniform(0.55, 0.9), rng.uniform(0.6, 0.95)
    hsv = np.uint8([[[((hue + hue_shift) % 360) / 2,
                      np.clip(sat * sat_scale, 0, 1) * 255, val * 255]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _rotated(points: np.ndarray, cx: float, cy: float,
             angle: float) -> np.ndarray:
    """``(N, 2)`` points around the origin, rotated and moved to (cx, cy)."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]], dtype=np.float64)
    return points @ rot.T + np.array([cx, cy])


def _fill(shape: Tuple[int, int], polygons: List[np.ndarray]) -> np.ndarray:
    m = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(m, [np.round(p).astype(np.int32) for p in polygons], 1,
                 cv2.LINE_8)
    return m.astype(bool)


# An object: its mask (bool (H, W)) and RGB (float32 (H, W, 3)), given the
# canvas grid, centre, size, angle, base colour and random stream.
_Shape = Callable[..., Tuple[np.ndarray, np.ndarray]]


def _coin(yy, xx, cx, cy, size, angle, base, rng):
    r = size / 2
    d = np.hypot(xx - cx, yy - cy)
    mask = d <= r
    period = max(2.0, r / 3)
    rgb = base * np.where((d // period) % 2 == 1, 0.72, 1.0)[..., None]
    rgb = rgb * (1.15 - 0.3 * (yy - cy + r) / (2 * r + 1))[..., None]
    return mask, rgb


def _leaf(yy, xx, cx, cy, size, angle, base, rng):
    half = size / 2
    t = np.linspace(-1, 1, 25)
    width = 0.32 * size * np.sqrt(1 - t**2) * (1 - 0.25 * t)
    outline = np.concatenate([np.stack([t * half, width], 1),
                              np.stack([t[::-1] * half, -width[::-1]], 1)])
    mask = _fill(xx.shape, [_rotated(outline, cx, cy, angle)])
    # leaf coordinates: u along the midrib, v across it
    c, s = np.cos(angle), np.sin(angle)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    vein = (np.abs(v) < max(1.0, 0.03 * size)) | (
        np.abs((u - np.abs(v) * 1.2) % max(3.0, 0.22 * size)) < max(
            1.0, 0.025 * size))
    rgb = base * np.where(vein, 0.55, 1.0)[..., None]
    return mask, rgb


def _plate(yy, xx, cx, cy, size, angle, base, rng):
    a, b = size / 2, size / 2 * rng.uniform(0.75, 1.0)
    c, s = np.cos(angle), np.sin(angle)
    u = ((xx - cx) * c + (yy - cy) * s) / a
    v = (-(xx - cx) * s + (yy - cy) * c) / b
    rho = np.sqrt(u**2 + v**2)
    mask = rho <= 1
    rim = rho > 0.72
    rgb = np.where(rim[..., None], base * 0.8, base)
    rgb = rgb + np.where((rho > 0.68) & (rho <= 0.72), -45.0, 0.0)[..., None]
    return mask, rgb


def _pencil(yy, xx, cx, cy, size, angle, base, rng):
    half, w = size / 2, max(1.5, size * rng.uniform(0.07, 0.1))
    tip = 0.2 * size
    body = np.array([[-half, -w], [half - tip, -w], [half - tip, w],
                     [-half, w]])
    point = np.array([[half - tip, -w], [half, 0], [half - tip, w]])
    body_m = _fill(xx.shape, [_rotated(body, cx, cy, angle)])
    tip_m = _fill(xx.shape, [_rotated(point, cx, cy, angle)])
    c, s = np.cos(angle), np.sin(angle)
    v = -(xx - cx) * s + (yy - cy) * c
    rgb = base * np.where(v > 0, 0.75, 1.0)[..., None]  # two-tone faces
    rgb = np.where(tip_m[..., None], np.float32([222, 196, 150]), rgb)
    return body_m | tip_m, rgb


def _star(yy, xx, cx, cy, size, angle, base, rng):
    outer, inner = size / 2, size / 2 * rng.uniform(0.38, 0.5)
    t = np.arange(10) * np.pi / 5
    radius = np.where(np.arange(10) % 2 == 0, outer, inner)
    pts = np.stack([radius * np.cos(t), radius * np.sin(t)], 1)
    mask = _fill(xx.shape, [_rotated(pts, cx, cy, angle)])
    speckle = rng.random(xx.shape) < 0.18
    rgb = base * np.where(speckle, 0.6, 1.0)[..., None]
    return mask, rgb


_SHAPES: Dict[str, _Shape] = {
    'person': _coin,
    'rider': _leaf,
    'car': _plate,
    'truck': _pencil,
    'bus': _star,
}
# style: hue shift, saturation scale, size scale, noise sigma, blur
_STYLES = {
    'target': (0.0, 1.0, 1.0, 4.0, False),
    'source': (35.0, 0.7, 1.25, 9.0, True),
}


def _table(height: int, width: int, rng: np.random.Generator,
           style: str) -> np.ndarray:
    """The background, RGB float32 ``(H, W, 3)``: wood or tiles."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if style == 'target':
        base = np.float32([150, 104, 64]) * rng.uniform(0.8, 1.15)
        angle = rng.uniform(0, np.pi)
        along = xx * np.cos(angle) + yy * np.sin(angle)
        across = -xx * np.sin(angle) + yy * np.cos(angle)
        freq = rng.uniform(0.25, 0.5)
        wobble = 3 * np.sin(along * rng.uniform(0.02, 0.05) + rng.uniform(
            0, 2 * np.pi))
        grain = 0.5 + 0.5 * np.sin((across + wobble) * freq)
        return base * (0.8 + 0.3 * grain)[..., None]
    base = np.float32([120, 132, 150]) * rng.uniform(0.8, 1.1)
    tile = rng.uniform(0.18, 0.3) * height
    grout = ((xx % tile) < 2) | ((yy % tile) < 2)
    shade = 1 + 0.12 * ((xx // tile + yy // tile) % 2)
    rgb = base * shade[..., None]
    rgb[grout] = base * 0.55
    return rgb


def _sample_classes(rng: np.random.Generator, num: int,
                    first: Optional[str]) -> List[str]:
    names = list(TABLETOP_CLASSES)
    weights = np.array([_CLASS_SIZE[n][2] for n in names])
    classes = [first] if first is not None else []
    while len(classes) < num:
        pick = rng.choice(len(names), p=weights / weights.sum())
        classes.append(names[pick])
    return classes


def render_tabletop_scene(height: int,
                          width: int,
                          rng: np.random.Generator,
                          style: str = 'target',
                          first_class: Optional[str] = None,
                          max_instances: int = 6,
                          min_visible_px: int = 20) -> ToyScene:
    """Render one tabletop scene.

    Args:
        height (int): Image height.
        width (int): Image width.
        rng (np.random.Generator): The random stream of this image.
        style (str): ``'target'`` (wood) or ``'source'`` (tiles).
        first_class (str, optional): Stored label of the first object (one
            of :data:`TABLETOP_CLASSES`); the others are drawn at random.
        max_instances (int): 1 to ``max_instances`` objects are placed.
        min_visible_px (int): Objects with fewer visible pixels are removed.

    Returns:
        ToyScene: Image, label maps and the visible instances (at least one).
    """
    if style not in _STYLES:
        raise ValueError(f'style must be one of {tuple(_STYLES)}, got '
                         f'{style!r}')
    if first_class is not None and first_class not in STORED_AS:
        raise ValueError(f'first_class must be one of {TABLETOP_CLASSES}, '
                         f'got {first_class!r}')
    hue_shift, sat_scale, size_scale, noise, blur = _STYLES[style]
    background = _table(height, width, rng, style)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(100):
        zoom = rng.uniform(0.75, 1.3) * size_scale
        layers = []
        for name in _sample_classes(rng, int(rng.integers(1,
                                                          max_instances + 1)),
                                    first_class):
            lo, hi, _ = _CLASS_SIZE[name]
            size = rng.uniform(lo, hi) * zoom * height
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            base = _colour(rng, name, hue_shift, sat_scale)
            mask, rgb = _SHAPES[name](yy, xx, cx, cy, size,
                                      rng.uniform(0, 2 * np.pi), base, rng)
            layers.append((name, mask, rgb))
        # the last object lies on top
        layers, visible = visible_layers(layers, min_visible_px)
        if layers:
            break
    else:  # pragma: no cover - practically unreachable
        raise RuntimeError('could not place a visible object')
    table = np.full((height, width), LABEL_IDS['road'], dtype=np.uint8)
    image, label_ids, instance_ids, instances = paint_layers(
        background, table, layers, visible)
    if blur:
        image = cv2.GaussianBlur(image, (3, 3), 0.8)
    image = image + rng.normal(0, noise, image.shape)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return ToyScene(image, label_ids, instance_ids, instances)
