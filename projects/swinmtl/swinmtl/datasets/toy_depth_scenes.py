# Copyright (c) mmcast contributors. All rights reserved.
"""Procedural toy scenes with metric depth and semantic labels.

A deterministic generator of small images for joint monocular depth
estimation and semantic segmentation, in an NYU-like layout that
:class:`ToyDepthSegDataset` (and mmseg's ``LoadDepthAnnotation`` with
``depth_rescale_factor=1e-3``) reads::

    <root>/images/<split>/toy_<index>.png        RGB, uint8
    <root>/annotations/<split>/toy_<index>.png   depth, uint16 millimetres
    <root>/labels/<split>/toy_<index>.png        class id, uint8
    <root>/toy_depth_meta.json                   generation arguments

with ``split`` in ``train`` and ``val``. A pinhole camera (focal length
``0.9 * width`` px, :data:`CAMERA_HEIGHT` m above a flat ground, horizon at
``0.4 * height``) looks at a ground plane whose depth at pixel row ``y``
(centre ``y + 0.5``) is ``CAMERA_HEIGHT * f / (y + 0.5 - horizon)``, capped
at :data:`MAX_DEPTH`; the sky above the horizon has no depth (0 = invalid).
On the ground stand 1 to ``max_objects`` fronto-parallel objects (boxes,
balls, poles) at known distances: every object has one constant depth,
stands with its bottom on the ground row of that depth, and the objects are
drawn far to near so that nearer ones occlude farther ones. The ground is a
perspective checkerboard (2 m tiles) and every colour fades into a haze with
distance, so that depth can be learnt from the image.

Classes (:data:`TOY_DEPTH_CLASSES`): 0 ground, 1 sky, 2 box, 3 ball,
4 pole; no pixel is ignored (255). Image ``i`` of a split draws from its own
random stream keyed by ``(seed, split, i)``: a run is byte-for-byte
reproducible.
"""
import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Tuple

import cv2
import numpy as np

TOY_DEPTH_CLASSES: Tuple[str, ...] = ('ground', 'sky', 'box', 'ball', 'pole')
TOY_DEPTH_PALETTE: List[List[int]] = [[128, 64, 128], [70, 130, 180],
                                      [230, 150, 30], [200, 30, 60],
                                      [40, 170, 80]]
DEPTH_SCALE = 1000  # PNG units per metre
MAX_DEPTH = 50.0  # metres; the ground is capped here (uint16 mm < 65.5 m)
CAMERA_HEIGHT = 1.5  # metres above the ground
HORIZON_SHARE = 0.4  # horizon row / image height
FOCAL_SHARE = 0.9  # focal length in pixels / image width
OBJECT_DEPTH_RANGE = (3.0, 25.0)  # metres, before the in-image constraint
TILE = 2.0  # metres, ground checkerboard
SPLITS: Tuple[str, ...] = ('train', 'val')
FOLDERS: Tuple[str, ...] = ('images', 'annotations', 'labels')
META_FILE = 'toy_depth_meta.json'
MIN_IMAGE_SIZE = 32
_SPLIT_KEYS = {'train': 0, 'val': 1}
_SKY = ((95, 145, 210), (200, 222, 242))  # RGB at the top, at the horizon
_HAZE = np.array((190.0, 200.0, 210.0), dtype=np.float32)
_GROUND = np.array((118.0, 108.0, 100.0), dtype=np.float32)
# object class -> (width range m, height range m (None: width), RGB)
_OBJECTS: Dict[str, Tuple[Tuple[float, float], Tuple[float, float], Tuple[
    int, int, int]]] = {
        'box': ((0.8, 2.0), (0.6, 1.6), (230, 150, 30)),
        'ball': ((0.5, 1.2), None, (200, 30, 60)),
        'pole': ((0.25, 0.4), (2.5, 4.0), (40, 170, 80)),
    }
_MIN_OBJECT_PX = 2.0  # smallest drawn width/height in pixels


@dataclass(frozen=True)
class ToyCamera:
    """The pinhole camera of a toy image size.

    Args:
        focal (float): Focal length in pixels.
        horizon (float): Image row (continuous, pixel centres at ``y + 0.5``)
            of the horizon.
        height (float): Camera height above the ground in metres.
    """
    focal: float
    horizon: float
    height: float = CAMERA_HEIGHT

    @classmethod
    def for_image(cls, height: int, width: int) -> 'ToyCamera':
        """The camera of a ``height`` × ``width`` toy image."""
        return cls(focal=FOCAL_SHARE * width, horizon=HORIZON_SHARE * height)

    def ground_depth(self, rows: np.ndarray) -> np.ndarray:
        """Depth in metres of the ground at continuous image rows (below the
        horizon), capped at :data:`MAX_DEPTH`; 0 at and above the horizon."""
        below = rows - self.horizon
        depth = np.full(np.shape(rows), MAX_DEPTH, dtype=np.float64)
        np.divide(self.height * self.focal, below, out=depth,
                  where=below > self.height * self.focal / MAX_DEPTH)
        depth[below <= 0] = 0.0
        return depth

    def ground_row(self, depth: float) -> float:
        """Continuous image row where the ground is ``depth`` metres away."""
        return self.horizon + self.height * self.focal / depth


@dataclass
class ToyDepthObject:
    """One object of a scene.

    Args:
        label (str): Class name (``'box'``, ``'ball'`` or ``'pole'``).
        depth (float): Its depth in metres (a whole number of millimetres).
        mask (np.ndarray): Its full silhouette, bool ``(H, W)``.
        visible (np.ndarray): The part not occluded by nearer objects, bool
            ``(H, W)``.
    """
    label: str
    depth: float
    mask: np.ndarray
    visible: np.ndarray

    @property
    def class_id(self) -> int:
        """Index in :data:`TOY_DEPTH_CLASSES`."""
        return TOY_DEPTH_CLASSES.index(self.label)


@dataclass
class ToyDepthScene:
    """A rendered scene.

    Args:
        image (np.ndarray): RGB image, uint8 ``(H, W, 3)``.
        labels (np.ndarray): Class ids, uint8 ``(H, W)``.
        depth_mm (np.ndarray): Depth in millimetres, uint16 ``(H, W)``,
            0 = invalid (sky).
        objects (list[ToyDepthObject]): Objects in drawing order (farthest
            first).
        camera (ToyCamera): The camera.
    """
    image: np.ndarray
    labels: np.ndarray
    depth_mm: np.ndarray
    objects: List[ToyDepthObject]
    camera: ToyCamera

    @property
    def depth(self) -> np.ndarray:
        """Depth in metres, float32 ``(H, W)``, 0 = invalid."""
        return self.depth_mm.astype(np.float32) / DEPTH_SCALE


def _hazed(rgb: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Blend colours ``(..., 3)`` into the haze with their depth ``(...)``."""
    amount = (0.6 * np.clip(depth / MAX_DEPTH, 0.0, 1.0))[..., None]
    return rgb * (1.0 - amount) + _HAZE * amount


def _object_mask(label: str, cx: float, bottom: float, width_px: float,
                 height_px: float, yc: np.ndarray,
                 xc: np.ndarray) -> np.ndarray:
    """Silhouette of an object standing at ``(cx, bottom)``, from pixel
    centre rows ``yc`` and columns ``xc`` (``(H, 1)`` and ``(1, W)``)."""
    if label == 'ball':
        radius = width_px / 2
        return ((xc - cx)**2 + (yc - (bottom - radius))**2) <= radius**2
    return ((np.abs(xc - cx) <= width_px / 2) & (yc <= bottom) &
            (yc >= bottom - height_px))


def _object_colour(label: str, rgb: np.ndarray, yc: np.ndarray,
                   xc: np.ndarray, cx: float, bottom: float, width_px: float,
                   height_px: float) -> np.ndarray:
    """Textured colour ``(H, W, 3)`` of an object: a box has a dark top
    band, a ball radial shading, a pole horizontal stripes."""
    h, w = yc.shape[0], xc.shape[1]
    shade = np.ones((h, w), dtype=np.float32)
    if label == 'box':
        shade[np.broadcast_to(yc < bottom - 0.75 * height_px, (h, w))] = 0.6
    elif label == 'ball':
        radius = width_px / 2
        r2 = ((xc - cx)**2 + (yc - (bottom - radius))**2) / radius**2
        shade = np.broadcast_to(1.1 - 0.5 * np.clip(r2, 0, 1),
                                (h, w)).astype(np.float32)
    else:
        period = max(2.0, height_px / 6)
        stripes = ((bottom - yc) // period) % 2 == 1
        shade[np.broadcast_to(stripes, (h, w))] = 0.55
    return rgb * shade[..., None]


def render_toy_depth_scene(height: int,
                           width: int,
                           rng: np.random.Generator,
                           max_objects: int = 4) -> ToyDepthScene:
    """Render one toy scene.

    Args:
        height (int): Image height in pixels.
        width (int): Image width in pixels.
        rng (np.random.Generator): The scene's random stream.
        max_objects (int): Objects placed: 1 to this. Defaults to 4.

    Returns:
        ToyDepthScene: Image, labels, depth and objects.
    """
    camera = ToyCamera.for_image(height, width)
    yc = (np.arange(height, dtype=np.float64) + 0.5)[:, None]  # (H, 1)
    xc = (np.arange(width, dtype=np.float64) + 0.5)[None, :]  # (1, W)

    # ground and sky
    row_depth = camera.ground_depth(yc[:, 0])  # (H,)
    depth = np.broadcast_to(row_depth[:, None], (height, width)).copy()
    ground = depth > 0
    labels = np.where(ground, TOY_DEPTH_CLASSES.index('ground'),
                      TOY_DEPTH_CLASSES.index('sky')).astype(np.uint8)
    top, low = (np.array(c, dtype=np.float32) for c in _SKY)
    t = np.clip(yc / camera.horizon, 0.0, 1.0)[..., None]  # (H, 1, 1)
    image = np.broadcast_to(top * (1 - t) + low * t,
                            (height, width, 3)).astype(np.float32)
    lateral = (xc - width / 2) * depth / camera.focal  # metres, (H, W)
    tiles = (np.floor(lateral / TILE) + np.floor(depth / TILE)) % 2 == 1
    ground_rgb = _GROUND * np.where(tiles, 0.72, 1.0)[..., None]
    image[ground] = _hazed(ground_rgb, depth)[ground]

    # objects, far to near
    near = camera.height * camera.focal / (height - camera.horizon - 1.0)
    z_lo = max(OBJECT_DEPTH_RANGE[0], 1.02 * near)
    z_hi = max(OBJECT_DEPTH_RANGE[1], 2.0 * z_lo)
    names = tuple(_OBJECTS)
    specs = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = names[int(rng.integers(len(names)))]
        widths, heights, rgb = _OBJECTS[label]
        z = round(float(rng.uniform(z_lo, z_hi)), 3)
        size_w = float(rng.uniform(*widths))
        size_h = size_w if heights is None else float(rng.uniform(*heights))
        jitter = float(rng.uniform(0.85, 1.15))
        cx = float(rng.uniform(0, width))
        specs.append((z, label, size_w, size_h, cx, jitter, rgb))
    specs.sort(key=lambda s: -s[0])
    objects: List[ToyDepthObject] = []
    for z, label, size_w, size_h, cx, jitter, rgb in specs:
        width_px = max(_MIN_OBJECT_PX, size_w * camera.focal / z)
        height_px = max(_MIN_OBJECT_PX, size_h * camera.focal / z)
        if label == 'ball':
            height_px = width_px
        bottom = camera.ground_row(z)
        mask = _object_mask(label, cx, bottom, width_px, height_px, yc, xc)
        if not mask.any():
            continue
        colour = _object_colour(label,
                                np.array(rgb, dtype=np.float32) * jitter, yc,
                                xc, cx, bottom, width_px, height_px)
        image[mask] = _hazed(colour[mask], np.full(mask.sum(), z))
        depth[mask] = z
        labels[mask] = TOY_DEPTH_CLASSES.index(label)
        objects.append(ToyDepthObject(label, z, mask, mask.copy()))
    for i, obj in enumerate(objects):
        for nearer in objects[i + 1:]:
            obj.visible &= ~nearer.mask

    image += rng.normal(0.0, 3.0, image.shape).astype(np.float32)
    return ToyDepthScene(
        image=np.clip(np.rint(image), 0, 255).astype(np.uint8),
        labels=labels,
        depth_mm=np.rint(depth * DEPTH_SCALE).astype(np.uint16),
        objects=objects,
        camera=camera)


def toy_depth_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of image ``index`` of ``split``."""
    return np.random.default_rng([seed, _SPLIT_KEYS[split], index])


def _write_png(path: str, array: np.ndarray) -> None:
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(path, array):
        raise OSError(f'could not write {path}')


def _write_meta(root: str, meta: dict) -> None:
    with open(osp.join(root, META_FILE), 'w') as f:
        json.dump(meta, f, indent=1, sort_keys=True)


def make_toy_depth_dataset(root: str,
                           num_train: int = 200,
                           num_val: int = 50,
                           height: int = 96,
                           width: int = 128,
                           seed: int = 0,
                           max_objects: int = 4) -> Dict[str, List[str]]:
    """Generate a toy depth + segmentation dataset (layout in the module
    docstring).

    Files of an earlier run into the same ``root`` that this run does not
    write are removed; a ``root`` that holds ``images``, ``annotations`` or
    ``labels`` but no ``toy_depth_meta.json`` is refused.

    Args:
        root (str): Dataset root (``data_root``).
        num_train (int): Number of train images (>= 1). Defaults to 200.
        num_val (int): Number of val images (>= 1). Defaults to 50.
        height (int): Image height (>= 32). Defaults to 96.
        width (int): Image width (>= 32). Defaults to 128.
        seed (int): Non-negative seed. Defaults to 0.
        max_objects (int): Objects per image: 1 to this (>= 1). Defaults
            to 4.

    Returns:
        dict[str, list[str]]: The image stems (file names without suffix) of
        every split.
    """
    for name, value, low in (('num_train', num_train, 1), ('num_val', num_val,
                                                           1),
                             ('height', height, MIN_IMAGE_SIZE),
                             ('width', width, MIN_IMAGE_SIZE),
                             ('seed', seed, 0), ('max_objects', max_objects,
                                                 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f'{name} must be an integer >= {low}, got '
                             f'{value!r}')
    meta_path = osp.join(root, META_FILE)
    if not osp.isfile(meta_path) and any(
            osp.isdir(osp.join(root, d)) for d in FOLDERS):
        raise FileExistsError(
            f'{root} holds {"/".join(FOLDERS)} folders that '
            f'make_toy_depth_dataset did not write (no {META_FILE}); '
            'refusing to write into it')
    camera = ToyCamera.for_image(height, width)
    meta = dict(
        generator='projects.swinmtl.swinmtl.datasets.toy_depth_scenes',
        version=1,
        num_train=int(num_train),
        num_val=int(num_val),
        height=int(height),
        width=int(width),
        seed=int(seed),
        max_objects=int(max_objects),
        classes=list(TOY_DEPTH_CLASSES),
        depth_scale=DEPTH_SCALE,
        max_depth=MAX_DEPTH,
        camera=dict(
            focal=camera.focal,
            horizon=camera.horizon,
            height=camera.height))
    os.makedirs(root, exist_ok=True)
    _write_meta(root, dict(meta, complete=False))

    stems: Dict[str, List[str]] = {}
    counts = dict(train=num_train, val=num_val)
    for split in SPLITS:
        dirs = {d: osp.join(root, d, split) for d in FOLDERS}
        for folder in dirs.values():
            os.makedirs(folder, exist_ok=True)
        stems[split] = [f'toy_{i:06d}' for i in range(counts[split])]
        for index, stem in enumerate(stems[split]):
            scene = render_toy_depth_scene(height, width,
                                           toy_depth_rng(seed, split, index),
                                           max_objects)
            _write_png(osp.join(dirs['images'], f'{stem}.png'), scene.image)
            _write_png(
                osp.join(dirs['annotations'], f'{stem}.png'), scene.depth_mm)
            _write_png(osp.join(dirs['labels'], f'{stem}.png'), scene.labels)
        expected = {f'{stem}.png' for stem in stems[split]}
        for folder in dirs.values():
            for name in os.listdir(folder):
                if name not in expected:
                    os.remove(osp.join(folder, name))
    _write_meta(root, dict(meta, complete=True))
    return stems
