# Copyright (c) mmcast contributors. All rights reserved.
"""Pseudo-labels as a COCO instance-segmentation json: the file format.

The file is a complete COCO json (``images`` = the unlabeled set's images,
``categories`` copied from it, RLE ``annotations`` with a ``score``) that
pycocotools, MMDetection's ``CocoDataset``/``CityscapesDataset`` and
``browse_dataset`` read as they are. Its ``info`` field carries a header::

    {'mmcast_pseudo_labels': {
        'teacher': 'configs/teacher.py',        # config path or a name
        'checkpoint': 'work_dirs/teacher.pth',
        'checkpoint_sha256': '...',
        'unlabeled_ann_file': 'data/.../unlabeled.json',
        'unlabeled_sha256': '...',
        'filter': {'score_thr': 0.3, 'max_per_image': 100, 'mask_thr': 0.5,
                   'non_overlapping': True, 'min_area': 1},
        'num_images': 2677, 'num_skipped': 0, 'skipped': [],
        'num_instances': 41234, 'num_capped_images': 0, 'num_over_cap': 0,
        'mmcast_version': '...'}}

``num_capped_images`` counts the images where a cap (the teacher's
``max_per_image`` or the filter's) left out instances above the score
threshold, ``num_over_cap`` those instances. The identity fields
(:data:`IDENTITY_KEYS`) say whether the file is current (see
:mod:`~mmcast.pseudo_labels.staleness`). ``info`` is written first in the
file, so the header is read without parsing the (possibly large)
annotations; a file cut short (which does not end as the writer ends it)
is invalid json all the same.
"""
import json
import os
import os.path as osp
from typing import Iterable, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch
from mmengine.structures import InstanceData

from mmcast.utils.atomic_io import atomic_open

HEADER_KEY = 'mmcast_pseudo_labels'
IDENTITY_KEYS = ('teacher', 'checkpoint_sha256', 'teacher_settings',
                 'unlabeled_sha256', 'filter')
SKIPPED_IMAGE_KEY = 'mmcast_skipped'
# How write_pseudo_label_json ends a file (the annotation list, the object).
_FILE_END = b']}'


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------
def read_info(path: str, max_bytes: int = 1 << 26) -> Optional[dict]:
    """The ``info`` field of a COCO json, or ``None`` if it has none.

    Files written by :func:`write_pseudo_label_json` start with ``info``, so
    only the first bytes (and the last two, to tell a file cut short) are
    parsed; other files are loaded whole.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not valid json.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'pseudo-label file not found: {path}')
    prefix = '{"info":'
    decoder = json.JSONDecoder()
    with open(path, 'rb') as f:
        f.seek(max(os.fstat(f.fileno()).st_size - len(_FILE_END), 0))
        complete = f.read() == _FILE_END
    with open(path, encoding='utf-8') as f:
        buf = f.read(1 << 16)
        if complete and buf.startswith(prefix):
            while True:
                try:
                    info, _ = decoder.raw_decode(buf, len(prefix))
                    return info if isinstance(info, dict) else None
                except json.JSONDecodeError:
                    more = f.read(1 << 20)
                    if not more or len(buf) > max_bytes:
                        break
                    buf += more
    try:
        with open(path, encoding='utf-8') as f:
            coco = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{path} is not valid json: {e}') from e
    info = coco.get('info') if isinstance(coco, dict) else None
    return info if isinstance(info, dict) else None


def read_header(path: str) -> Optional[dict]:
    """The mmcast pseudo-label header of ``path`` (``None`` if absent)."""
    info = read_info(path)
    if info is None:
        return None
    header = info.get(HEADER_KEY)
    return header if isinstance(header, dict) else None


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------
def _to_numpy_masks(masks) -> np.ndarray:
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    elif hasattr(masks, 'to_ndarray'):
        masks = masks.to_ndarray()
    return np.asarray(masks).astype(bool)


def instances_to_coco_annotations(instances: InstanceData,
                                  image_id,
                                  cat_ids: Sequence[int],
                                  start_id: int = 1,
                                  score_decimals: int = 5) -> List[dict]:
    """COCO annotation dicts for one image's (filtered) instances.

    Args:
        instances (InstanceData): ``masks`` (n, H, W) bool, ``labels`` (n,)
            in the dataset's class order, ``scores`` (n,).
        image_id: The COCO image id.
        cat_ids (Sequence[int]): COCO category id of each class index
            (``CocoDataset.cat_ids``).
        start_id (int): Id of the first annotation; the others follow.
        score_decimals (int): Scores are rounded to keep the file small.

    Returns:
        list[dict]: ``id``, ``image_id``, ``category_id``, ``segmentation``
        (RLE, ``counts`` a str), ``area``, ``bbox`` (xywh), ``iscrowd`` 0 and
        ``score``; masks with no pixel are left out.
    """
    masks = _to_numpy_masks(instances.masks)
    labels = [int(x) for x in np.asarray(
        instances.labels.cpu() if isinstance(instances.labels, torch.Tensor)
        else instances.labels).reshape(-1)]
    scores = [float(x) for x in np.asarray(
        instances.scores.cpu() if isinstance(instances.scores, torch.Tensor)
        else instances.scores).reshape(-1)]
    if len(masks) == 0:
        return []
    rles = mask_util.encode(
        np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    areas = mask_util.area(rles)
    boxes = mask_util.toBbox(rles)
    anns = []
    for rle, area, box, label, score in zip(rles, areas, boxes, labels,
                                            scores):
        if area <= 0:
            continue
        if not 0 <= label < len(cat_ids):
            raise ValueError(f'label {label} of image {image_id} is out of '
                             f'range for {len(cat_ids)} classes')
        counts = rle['counts']
        anns.append(
            dict(
                id=start_id + len(anns),
                image_id=image_id,
                category_id=int(cat_ids[label]),
                segmentation=dict(
                    size=[int(s) for s in rle['size']],
                    counts=counts.decode('ascii')
                    if isinstance(counts, bytes) else counts),
                area=int(area),
                bbox=[float(v) for v in box],
                iscrowd=0,
                score=round(score, score_decimals)))
    return anns


def write_pseudo_label_json(out_file: str, header: dict,
                            images: Iterable[dict],
                            categories: Sequence[dict],
                            annotations: Iterable[dict]) -> None:
    """Write a complete COCO json atomically, ``info`` first.

    Args:
        out_file (str): Destination.
        header (dict): Stored as ``info['mmcast_pseudo_labels']``.
        images (Iterable[dict]): COCO image entries (skipped images may carry
            ``mmcast_skipped: true``).
        categories (Sequence[dict]): COCO categories.
        annotations (Iterable[dict]): COCO annotations with unique ids.
    """
    coco = {
        'info': {
            'description': 'mmcast pseudo-labels',
            HEADER_KEY: header
        },
        'licenses': [],
        'categories': list(categories),
        'images': list(images),
        'annotations': list(annotations),
    }
    with atomic_open(out_file, 'w', encoding='utf-8') as f:
        json.dump(coco, f, separators=(',', ':'))
