# Copyright (c) mmcast contributors. All rights reserved.
"""The bundled toy world: street scenes seen from the side.

Small street-like images with the 8 Cityscapes *thing* classes
(:mod:`.street_objects`) standing on a road below a sky/skyline background;
the nearer ones are drawn later and occlude the farther ones. The instance
masks are the *visible* parts; an object left with fewer than
``min_visible_px`` visible pixels is removed from the scene altogether (not
drawn, not annotated). A tiny randomly initialised Mask2Former learns them
on a CPU in minutes.

The ``'source'`` style is a domain-shifted corpus (hue-shifted, less saturated
palette, dusk sky over hills and a dirt road, bigger objects, more noise, its
own seed stream and city names) for pre-training a stand-in "foundation"
teacher whose zero-shot accuracy on the ``'target'`` style is non-trivial but
imperfect.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from .drawing import Painter, draw_rect, hsv_colour, smooth_noise
from .scene import (LABEL_IDS, STYLES, THING_CLASSES, ToyScene, paint_layers,
                    visible_layers)
from .street_objects import CLASS_LOOK, CLASS_PARTS


@dataclass(frozen=True)
class ToyStyle:
    """The look of one corpus of street scenes.

    Args:
        name (str): ``'target'`` or ``'source'``.
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
    """
    name: str
    hue_shift: float
    sat_scale: float
    size_range: Tuple[float, float]
    sky: Tuple[Tuple[int, int, int], Tuple[int, int, int]]
    skyline: str
    road: Tuple[int, int, int]
    lane_marks: bool
    noise_sigma: float


STREET_STYLES: Dict[str, ToyStyle] = {
    'target':
    ToyStyle(
        name='target',
        hue_shift=0.0,
        sat_scale=1.0,
        size_range=(0.30, 0.45),
        sky=((105, 155, 215), (195, 218, 240)),
        skyline='buildings',
        road=(92, 92, 98),
        lane_marks=True,
        noise_sigma=5.0),
    'source':
    ToyStyle(
        name='source',
        hue_shift=28.0,
        sat_scale=0.75,
        size_range=(0.38, 0.58),
        sky=((72, 52, 112), (232, 146, 96)),
        skyline='hills',
        road=(118, 88, 70),
        lane_marks=False,
        noise_sigma=9.0),
}

_LARGE = ('truck', 'bus', 'train')  # at most two of these per image


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
    rgb += smooth_noise(rng, height, width, 6, 8.0)[..., None]

    skyline = np.zeros((height, width), dtype=np.uint8)
    if style.skyline == 'buildings':
        sky_label = LABEL_IDS['building']
        x = -float(rng.uniform(0, 0.1 * width))
        while x < width:
            bw = float(rng.uniform(0.1, 0.28) * width)
            top_y = horizon - float(rng.uniform(0.12, 0.36) * height)
            m = np.zeros((height, width), dtype=np.uint8)
            draw_rect(m, x, top_y, x + bw - 1, horizon)
            colour = hsv_colour(
                rng.uniform(20, 50), rng.uniform(0.0, 0.25),
                rng.uniform(0.45, 0.8))
            mb = m.astype(bool)
            rgb[mb] = colour
            # a grid of darker windows
            p = max(3, int(round(0.05 * height)))
            win = np.zeros((height, width), dtype=np.uint8)
            for wy in np.arange(top_y + p * 0.6, horizon - p, p):
                for wx in np.arange(x + p * 0.6, x + bw - p, p):
                    draw_rect(win, wx, wy, wx + p * 0.45, wy + p * 0.45)
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
        colour = hsv_colour(rng.uniform(90, 140), 0.5, rng.uniform(0.3, 0.45))
        rgb[m] = colour
        rgb[m] += smooth_noise(rng, height, width, 24, 25.0)[m][:, None]
        skyline = m.astype(np.uint8)
    labels[skyline.astype(bool)] = sky_label

    road = np.zeros((height, width), dtype=bool)
    road[int(round(horizon)):] = True
    ground = np.array(style.road, dtype=np.float32)
    shade = 0.85 + 0.3 * np.clip(
        (yy[:, :, 0] - horizon) / max(height - horizon, 1.0), 0, 1)
    rgb[road] = (ground[None, None] * shade[..., None] * np.ones(
        (1, width, 1), dtype=np.float32))[road]
    blotch = smooth_noise(rng, height, width, 16,
                          10.0 if style.lane_marks else 22.0)
    rgb[road] += blotch[road][:, None]
    if style.lane_marks:
        ly = horizon + rng.uniform(0.45, 0.65) * (height - horizon)
        dash = max(4.0, 0.07 * width)
        lm = np.zeros((height, width), dtype=np.uint8)
        x = -float(rng.uniform(0, 2 * dash))
        while x < width:
            draw_rect(lm, x, ly, x + dash, ly + max(1.0, 0.02 * height))
            x += 2 * dash
        rgb[lm.astype(bool) & road] = 225.0
    labels[road] = LABEL_IDS['road']
    return rgb, labels, horizon


def _sample_classes(rng: np.random.Generator, num: int,
                    first: Optional[str]) -> List[str]:
    names = list(THING_CLASSES)
    weights = np.array([CLASS_LOOK[n][4] for n in names])
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
    if style not in STREET_STYLES:
        raise ValueError(f'style must be one of {STYLES}, got {style!r}')
    cfg = STREET_STYLES[style]
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
            hue0, sat0, val0, tex, _ = CLASS_LOOK[name]
            base = hsv_colour(hue0 + cfg.hue_shift + rng.normal(0, 7),
                              sat0 * cfg.sat_scale * rng.uniform(0.85, 1.1),
                              val0 * rng.uniform(0.85, 1.08))
            period = int(round(max(2.0, 0.07 * u * rng.uniform(0.8, 1.25))))
            phase = int(rng.integers(0, 2 * period))
            objects.append((yb, name, cx, u, d, base, tex, period, phase))
        objects.sort(key=lambda o: o[0])  # far (small yb) first
        layers = []
        for yb, name, cx, u, d, base, tex, period, phase in objects:
            painter = Painter(height, width, period, phase)
            for draw, colour, texture in CLASS_PARTS[name](cx, yb, u, d, base,
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
