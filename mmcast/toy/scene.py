# Copyright (c) mmcast contributors. All rights reserved.
"""What every toy world draws: a scene in Cityscapes labels.

The toy worlds (:mod:`.streets`, :mod:`.tabletop`, :mod:`.cells`) render a
:class:`ToyScene`: an RGB image, its Cityscapes label-id and instance-id
maps and its visible objects. They store their classes under the 8
Cityscapes *thing* labels (:data:`THING_CLASSES`), so that one file layout
(:mod:`.cityscapes_layout`) and the toy configs serve them all. This module
also holds what the worlds share: the occlusion of objects drawn on each
other (:func:`visible_layers`, :func:`paint_layers`), the random stream of
each image (:func:`scene_rng`) and its name (:func:`image_stems`).

Every image draws from its own random stream, keyed by ``(seed, style,
split, index)``: a run is byte-for-byte reproducible, and image ``i`` of a
split does not depend on how many images the other splits have.
"""
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

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
FRAME_NB = 19  # the annotated frame of every Cityscapes snippet
SPLIT_KEYS: Dict[str, int] = {'train': 0, 'val': 1, 'test': 2}
#: Keys the random streams of each style.
STYLE_SEED_KEYS: Dict[str, int] = {'target': 0, 'source': 1}
#: Fake city names per style and split (lower-case letters only:
#: cityscapesscripts splits file names on ``'_'``).
CITIES: Dict[str, Dict[str, Tuple[str, ...]]] = {
    'target':
    dict(
        train=('toyville', 'mockburg', 'pixelton', 'fakefurt', 'stubhaven',
               'shimcity', 'proxyport', 'dummydorf'),
        val=('testham', 'evalsby', 'checkwick', 'probeford', 'auditon',
             'gaugeburg', 'metricton', 'scoreville'),
        test=('holdoutia', 'blindburg', 'sealedham', 'hiddenby', 'veilton',
              'maskford', 'coverwick', 'shadeport')),
    'source':
    dict(
        train=('farland', 'otherby', 'yonderton', 'elsewick', 'remotia',
               'distburg', 'outerham', 'farport'),
        val=('nearland', 'besideby', 'adjaton', 'flankwick', 'sideburg',
             'borderham', 'edgeton', 'rimport'),
        test=('awayland', 'aparton', 'asideby', 'offwick', 'outburg', 'exham',
              'beyondton', 'pastport')),
}


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


# An object drawn on a full-size canvas: (class name, mask bool (H, W),
# RGB float32 (H, W, 3)).
Layer = Tuple[str, np.ndarray, np.ndarray]


def visible_layers(
        layers: List[Layer],
        min_visible_px: int) -> Tuple[List[Layer], List[np.ndarray]]:
    """The objects left visible and their visible masks.

    ``layers`` are in drawing order (the last lies on top). An object with
    fewer than ``min_visible_px`` visible pixels is removed and the rest is
    recomputed, since a removed object uncovers what lies behind it.
    """
    while True:
        covered = np.zeros(
            layers[0][1].shape if layers else (0, 0), dtype=bool)
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
    key = (STYLE_SEED_KEYS[style], SPLIT_KEYS[split], int(index))
    return np.random.default_rng(
        np.random.SeedSequence(int(seed), spawn_key=key))


def image_stems(num: int, split: str, style: str,
                num_cities: int) -> List[Tuple[str, str]]:
    """``(city, stem)`` of the ``num`` images of a split, in order.

    Images are spread over the cities in contiguous blocks, numbered from 0
    within each city: ``<city>_<seq:06d>_000019``.
    """
    cities = CITIES[style][split][:num_cities]
    out, seq = [], {}
    for i in range(num):
        city = cities[i * len(cities) // num]
        n = seq.get(city, 0)
        seq[city] = n + 1
        out.append((city, f'{city}_{n:06d}_{FRAME_NB:06d}'))
    return out
