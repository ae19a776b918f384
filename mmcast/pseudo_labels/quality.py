# Copyright (c) mmcast contributors. All rights reserved.
"""How good are the pseudo-labels? Precision and recall against ground truth.

The teacher's pseudo-labels of images whose ground truth is known (the
labeled split D_l, or the unlabeled split of a generated dataset, where the
generator knows it) are matched to that ground truth per image and class:
greedily by descending score, a pseudo-instance is a true positive when its
mask IoU with a still unmatched ground-truth instance of its class is at
least ``iou_thr``. Swept over score thresholds, this gives the precision,
recall and instances per image each threshold would give the student, and
the threshold to pick (the best F1) without looking at val.
"""
import json
from typing import Dict, List, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

DEFAULT_SCORE_THRS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _load_coco(path: str, what: str) -> dict:
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f'{what} {path} cannot be read as json: {e}') from e
    for key in ('images', 'annotations'):
        if not isinstance(data.get(key), list):
            raise ValueError(f'{what} {path} has no "{key}" list: not a COCO '
                             'instance json')
    return data


def _rle(segmentation, height: int, width: int) -> Optional[dict]:
    """One COCO segmentation (polygons, RLE or uncompressed RLE) as RLE.

    Polygon parts with fewer than 3 points (or an odd number of
    coordinates) are dropped as mmdet's ``LoadAnnotations`` drops them;
    ``None`` when no part is left (training ignores such an instance).
    """
    if isinstance(segmentation, list):
        parts = [p for p in segmentation if len(p) >= 6 and not len(p) % 2]
        if not parts:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(parts, height, width))
    if isinstance(segmentation.get('counts'), list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def _instances(data: dict, path: str) -> Dict[str, List[dict]]:
    """``file_name`` → its annotations, with an RLE ``_rle`` each (those
    without a usable mask left out)."""
    images = {}
    for img in data['images']:
        images[img['id']] = img
    by_name: Dict[str, List[dict]] = {
        img['file_name']: [] for img in data['images']}
    for ann in data['annotations']:
        img = images.get(ann['image_id'])
        if img is None:
            raise ValueError(f'{path}: annotation {ann.get("id")} names '
                             f'image_id {ann["image_id"]}, which is not in '
                             '"images"')
        rle = _rle(ann.get('segmentation') or [], img['height'],
                   img['width'])
        if rle is not None:
            by_name[img['file_name']].append(dict(ann, _rle=rle))
    return by_name


def _match(preds: List[dict], gts: List[dict], iou_thr: float) -> np.ndarray:
    """Whether each prediction (in descending score order) is a TP."""
    tp = np.zeros(len(preds), dtype=bool)
    if not preds or not gts:
        return tp
    ious = mask_utils.iou([p['_rle'] for p in preds],
                          [g['_rle'] for g in gts], [0] * len(gts))
    same_class = np.array([[p['category_id'] == g['category_id']
                            for g in gts] for p in preds])
    ious = np.where(same_class, ious, 0.0)
    free = np.ones(len(gts), dtype=bool)
    for i in range(len(preds)):
        cand = np.where(free, ious[i], -1.0)
        j = int(cand.argmax())
        if cand[j] >= iou_thr:
            tp[i], free[j] = True, False
    return tp


def pseudo_label_quality(pseudo_label_file: str,
                         gt_file: str,
                         score_thrs: Sequence[float] = DEFAULT_SCORE_THRS,
                         iou_thr: float = 0.5) -> dict:
    """Precision, recall and instances per image of pseudo-labels.

    Images are matched by ``file_name``; only pseudo-labeled images that
    the ground-truth file has count. Crowd ground truth is left out, and
    so are polygons with no part of 3 or more points (as in training). At a
    threshold ``t`` the pseudo-instances with ``score >= t`` are kept and
    matched anew (a lower-scored instance can take a ground truth that a
    dropped one held), as the student would see them with ``score_thr=t``.
    Thresholds below the filter the file was written with see only what
    that filter kept.

    Args:
        pseudo_label_file (str): A pseudo-label COCO json (``score`` per
            annotation).
        gt_file (str): A COCO instance json covering those images.
        score_thrs (Sequence[float]): The thresholds to sweep.
        iou_thr (float): Mask IoU that makes a match. Defaults to 0.5.

    Returns:
        dict: ``num_images``, ``gt_per_image``, ``median_score`` (of all
        pseudo-instances), ``sweep`` (a dict per threshold: ``score_thr``,
        ``precision``, ``recall``, ``f1``, ``per_image``: pseudo-instances
        per image) and ``best_f1_thr`` (the threshold with the highest F1;
        the lowest such on ties).
    """
    if not 0 < iou_thr <= 1:
        raise ValueError(f'iou_thr must be in (0, 1], got {iou_thr}')
    pseudo_data = _load_coco(pseudo_label_file, 'pseudo-label file')
    if any('score' not in a for a in pseudo_data['annotations']):
        raise ValueError(f'pseudo-label file {pseudo_label_file}: an '
                         'annotation has no "score"')
    pseudo = _instances(pseudo_data, pseudo_label_file)
    gt = _instances(_load_coco(gt_file, 'ground-truth file'), gt_file)
    names = sorted(n for n in pseudo if n in gt)
    if not names:
        raise ValueError(
            f'no image of {pseudo_label_file} is in {gt_file} (images are '
            'matched by file_name)')
    gts = {n: [g for g in gt[n] if not g.get('iscrowd', 0)] for n in names}
    num_gt = sum(len(v) for v in gts.values())
    scores = [p['score'] for n in names for p in pseudo[n]]
    sweep = []
    for thr in sorted(float(t) for t in score_thrs):
        num_tp = num_pred = 0
        for n in names:
            preds = sorted((p for p in pseudo[n] if p['score'] >= thr),
                           key=lambda p: -p['score'])
            num_pred += len(preds)
            num_tp += int(_match(preds, gts[n], iou_thr).sum())
        precision = num_tp / num_pred if num_pred else 0.0
        recall = num_tp / num_gt if num_gt else 0.0
        f1 = (2 * precision * recall / (precision + recall)
              if precision + recall else 0.0)
        sweep.append(dict(score_thr=thr, precision=precision, recall=recall,
                          f1=f1, per_image=num_pred / len(names)))
    best = max(sweep, key=lambda r: (r['f1'], -r['score_thr']))
    return dict(num_images=len(names), gt_per_image=num_gt / len(names),
                median_score=float(np.median(scores)) if scores else None,
                iou_thr=iou_thr, sweep=sweep,
                best_f1_thr=best['score_thr'])
