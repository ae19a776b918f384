# Copyright (c) mmcast contributors. All rights reserved.
"""A dense toy world: cells under a microscope.

The streets and the tabletop (:mod:`~mmcast.toy.streets`,
:mod:`~mmcast.toy.tabletop`) have 1 to 6 objects an image; this
world has 50 to 200, small and touching, as cell microscopy, crowds,
shelves and aerial images have, so that a model's instance capacity (its
queries, the detections and pseudo-labels it keeps) is what limits it:

- **grayscale**: every channel has the same value (sensor noise aside);
- **packed**: cell centres are spread with a minimum distance, each cell is
  an ellipse of its own size, elongation and angle, and a pixel that
  several ellipses cover belongs to the nearest centre (in units of each
  cell's radius), so neighbours share their borders; the number of cells is
  drawn from ``max_instances / 4`` to ``max_instances`` (fewer where the
  image has no room: at least ~40 pixels a cell);
- **2 classes**: a *cell* (a darker membrane, a dark nucleus) and, about
  one in ten, a *dividing* cell (smaller, brighter, two nuclei along its
  long axis);
- **domain shift**: the ``'target'`` style is bright field (dark cells on a
  light background); the ``'source'`` corpus is fluorescence-like (bright
  cells on a dark background), with larger cells, more blur and noise.

The files are the streets' Cityscapes layout, written by
:func:`~mmcast.toy.worlds.make_toy_dataset` with ``world='cells'``
(the classes stored under the toy's Cityscapes thing labels of
:data:`STORED_AS`, the background labelled ``road``), or a plain COCO
layout (:func:`~mmcast.toy.coco_layout.make_toy_coco_dataset`)
with the class names themselves.
"""
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from .scene import LABEL_IDS, ToyScene, paint_layers

#: This world's classes, by the Cityscapes thing label each is stored as.
STORED_AS: Dict[str, str] = {'person': 'cell', 'rider': 'dividing'}
CELLS_CLASSES: Tuple[str, ...] = tuple(STORED_AS)
#: Cells per image at most, by default (the other worlds place 6 objects).
DEFAULT_MAX_CELLS = 200
# the share of dividing cells
DIVIDING_SHARE = 0.1
# pixels of the image per cell at least (fewer cells on small images)
MIN_PIXELS_PER_CELL = 40
# image area the cells cover (the rest is background between them)
COVERED_SHARE = 0.8
# style: background, cytoplasm, membrane, nucleus (grey values), cell size
# scale, blur sigma, noise sigma
_STYLES = {
    'target': (205.0, 150.0, 95.0, 70.0, 1.0, 0.5, 5.0),
    'source': (30.0, 140.0, 200.0, 235.0, 1.25, 0.9, 9.0),
}


def _centres(rng: np.random.Generator, num: int, height: int, width: int,
             spacing: float) -> np.ndarray:
    """Up to ``num`` points ``(n, 2)`` (x, y) at least ``spacing`` apart
    (dart throwing; a crowded image keeps the ones that fit)."""
    points = np.empty((num, 2))
    count = 0
    for point in rng.uniform((0, 0), (width, height), size=(num * 10, 2)):
        near = points[:count] - point
        if count and (near * near).sum(1).min() < spacing**2:
            continue
        points[count] = point
        count += 1
        if count == num:
            break
    return points[:count]


def _cell_regions(height: int, width: int, centres: np.ndarray,
                  radii: np.ndarray, aspect: np.ndarray,
                  angle: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The owner of each pixel (int (H, W), -1 background) and its distance
    to the owner's centre in units of the owner's radius (float (H, W)).

    The distance to cell ``i`` is elliptical (long axis ``radii[i] *
    aspect[i]`` at ``angle[i]``); a pixel belongs to the cell it is
    nearest to in those units (the first on a tie), if that is under 1.
    Each cell is measured in its bounding window only.
    """
    owner = np.full((height, width), -1, np.int64)
    nearest = np.full((height, width), np.inf, np.float32)
    for i, ((cx, cy), r, a, t) in enumerate(zip(centres, radii, aspect,
                                                angle)):
        reach = r * a
        x0, x1 = max(0, int(cx - reach)), min(width, int(cx + reach) + 2)
        y0, y1 = max(0, int(cy - reach)), min(height, int(cy + reach) + 2)
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
        along = (dx * np.cos(t) + dy * np.sin(t)) / reach
        across = (-dx * np.sin(t) + dy * np.cos(t)) / r
        dist = np.sqrt(along**2 + across**2)
        window = nearest[y0:y1, x0:x1]
        closer = dist < window
        window[closer] = dist[closer]
        owner[y0:y1, x0:x1][closer] = i
    owner[nearest >= 1] = -1
    return owner, nearest


def render_cells_scene(height: int,
                       width: int,
                       rng: np.random.Generator,
                       style: str = 'target',
                       first_class: Optional[str] = None,
                       max_instances: int = DEFAULT_MAX_CELLS,
                       min_visible_px: int = 20) -> ToyScene:
    """Render one image of packed cells.

    Args:
        height (int): Image height.
        width (int): Image width.
        rng (np.random.Generator): The random stream of this image.
        style (str): ``'target'`` (bright field) or ``'source'``
            (fluorescence-like).
        first_class (str, optional): Stored label of the first cell (one of
            :data:`CELLS_CLASSES`); the others are dividing cells with
            probability :data:`DIVIDING_SHARE`.
        max_instances (int): Cells placed at most; at least a quarter of it
            (fewer where the image has no room).
        min_visible_px (int): Cells with fewer pixels are removed (their
            pixels turn background).

    Returns:
        ToyScene: Image, label maps and the cells (at least one).
    """
    if style not in _STYLES:
        raise ValueError(f'style must be one of {tuple(_STYLES)}, got '
                         f'{style!r}')
    if first_class is not None and first_class not in STORED_AS:
        raise ValueError(f'first_class must be one of {CELLS_CLASSES}, got '
                         f'{first_class!r}')
    back, plasma, membrane, nucleus, size_scale, blur, noise = _STYLES[style]
    room = max(1, height * width // MIN_PIXELS_PER_CELL)
    num = int(rng.integers(max(1, max_instances // 4), max_instances + 1))
    num = max(1, int(min(num, room) / size_scale**2))
    radius = np.sqrt(COVERED_SHARE * height * width / (np.pi * num))
    centres = _centres(rng, num, height, width, 1.3 * radius)
    num = len(centres)
    dividing = rng.random(num) < DIVIDING_SHARE
    if first_class is not None:
        dividing[0] = first_class == 'rider'
    radii = radius * rng.uniform(0.85, 1.2, num) * np.where(dividing, 0.8, 1)
    aspect = rng.uniform(1.0, 1.4, num) + np.where(dividing, 0.5, 0.0)
    angle = rng.uniform(0, np.pi, num)
    owner, dist = _cell_regions(height, width, centres, radii, aspect, angle)
    # the long-axis coordinate, for the two nuclei of a dividing cell
    cell = np.maximum(owner, 0)
    dx = np.arange(width)[None, :] - centres[cell, 0]
    dy = np.arange(height)[:, None] - centres[cell, 1]
    along = (dx * np.cos(angle[cell]) + dy * np.sin(angle[cell])) / (
        radii[cell] * aspect[cell])
    in_nucleus = np.where(dividing[cell],
                          np.hypot(np.abs(along) - 0.45, dist * 0.6) < 0.25,
                          dist < 0.42)
    shade = rng.normal(0, 12, num + 1)[owner]
    image = np.full((height, width), back, np.float32)
    inside = owner >= 0
    image[inside] = plasma + shade[inside] + np.where(
        dividing[cell], 0.25 * (back - plasma), 0)[inside]
    image[inside & in_nucleus] = nucleus
    # borders: a pixel next to another cell (or the background)
    edge = np.zeros_like(inside)
    for shift in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        edge |= np.roll(owner, shift, axis=(0, 1)) != owner
    image[inside & (edge | (dist > 0.88))] = membrane
    image = cv2.GaussianBlur(image, (0, 0), blur)
    image = image + rng.normal(0, noise, image.shape)
    grey = np.clip(np.round(image), 0, 255)
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    layers, visible = [], []
    for i in range(num):
        mask = owner == i
        if mask.sum() >= min_visible_px:
            name = 'rider' if dividing[i] else 'person'
            layers.append((name, mask, rgb))
            visible.append(mask)
    if not layers:  # pragma: no cover - a cell covers ~60 px at least
        raise RuntimeError('no cell of min_visible_px pixels')
    background = np.full((height, width), LABEL_IDS['road'], np.uint8)
    image, label_ids, instance_ids, instances = paint_layers(
        rgb.copy(), background, layers, visible)
    return ToyScene(image.astype(np.uint8), label_ids, instance_ids,
                    instances)
