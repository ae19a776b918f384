# Copyright (c) mmcast contributors. All rights reserved.
"""The files of a toy dataset, written exactly like the real Cityscapes.

So that MMDetection's converter (``tools/dataset_converters/cityscapes.py``),
:class:`CityscapesDataset` and :class:`CityScapesMetric` (cityscapesscripts)
run on a toy world unchanged::

    <out>/leftImg8bit/<split>/<city>/<city>_<seq>_000019_leftImg8bit.png
    <out>/gtFine/<split>/<city>/<city>_<seq>_000019_gtFine_instanceIds.png
    <out>/gtFine/<split>/<city>/<city>_<seq>_000019_gtFine_labelIds.png
    <out>/gtFine/<split>/<city>/<city>_<seq>_000019_gtFine_color.png
    <out>/gtFine/<split>/<city>/<city>_<seq>_000019_gtFine_polygons.json
    <out>/annotations/instancesonly_filtered_gtFine_<split>.json
    <out>/lists/<split>.txt          (one image stem a line)
    <out>/toy_meta.json              (generation arguments; written last)

Every file is written to a temporary file beside it and renamed, so a
killed run never leaves a half-written one.
"""
import json
import os
import os.path as osp
from typing import List

import cv2
import numpy as np
import pycocotools.mask as maskUtils

from mmcast.utils.atomic_io import atomic_open

from .scene import LABEL_COLORS, LABEL_IDS, SPLITS, ToyScene

META_FILE = 'toy_meta.json'
COCO_JSON_TMPL = 'instancesonly_filtered_gtFine_{}.json'


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


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all
    (:func:`~mmcast.utils.atomic_io.atomic_open`)."""
    with atomic_open(path, 'wb') as f:
        f.write(data)


def png_bytes(arr: np.ndarray) -> bytes:
    """PNG of a ``(H, W)`` map or an RGB ``(H, W, 3)`` image."""
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.png', arr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover
        raise RuntimeError('PNG encoding failed')
    return buf.tobytes()


def json_bytes(obj) -> bytes:
    """JSON with sorted keys, UTF-8."""
    return json.dumps(obj, sort_keys=True).encode('utf-8')


def write_scene(out_dir: str, split: str, city: str, stem: str,
                scene: ToyScene) -> None:
    """Write the image and the gtFine files of one scene."""
    img_dir = osp.join(out_dir, 'leftImg8bit', split, city)
    gt_dir = osp.join(out_dir, 'gtFine', split, city)
    write_atomically(
        osp.join(img_dir, f'{stem}_leftImg8bit.png'), png_bytes(scene.image))
    write_atomically(
        osp.join(gt_dir, f'{stem}_gtFine_instanceIds.png'),
        png_bytes(scene.instance_ids))
    write_atomically(
        osp.join(gt_dir, f'{stem}_gtFine_labelIds.png'),
        png_bytes(scene.label_ids))
    lut = np.zeros((256, 3), dtype=np.uint8)
    for label_id, colour in LABEL_COLORS.items():
        lut[label_id] = colour
    write_atomically(
        osp.join(gt_dir, f'{stem}_gtFine_color.png'),
        png_bytes(lut[scene.label_ids]))
    write_atomically(
        osp.join(gt_dir, f'{stem}_gtFine_polygons.json'),
        json_bytes(cityscapes_polygons(scene)))


def prepare_out_dir(out_dir: str, meta: dict) -> None:
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
    write_atomically(meta_path, json_bytes(dict(meta, complete=False)))


def prune_stale_files(out_dir: str, expected: set) -> None:
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
