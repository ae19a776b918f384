# Copyright (c) mmcast contributors. All rights reserved.
"""How much of a mask AP difference is evaluation noise? Split-half estimates.

A mask AP measured on N val images is itself an estimate. Split the images
at random into two disjoint halves A and B: AP(A) and AP(B) are independent
estimates on N/2 images each, so ``var(AP(A) - AP(B)) = 2 var_{N/2}`` and,
with the variance of an average falling as 1/N, the standard error of the AP
on all N images is ``std(AP(A) - AP(B)) / 2`` over many random splits. The
same holds for a paired difference of two models on the same images (e.g.
CAST − labels-only): ``d(A) - d(B)`` with ``d = AP_1 - AP_2`` gives the
standard error of ``d``, which is what a claimed gain must be large against
(it is smaller than the models' own errors combined when both err on the
same images).

The COCO matching (pycocotools ``COCOeval.evaluate``) runs once per model;
each half reuses its per-image results (``accumulate`` on the subset), so a
subset's AP equals a fresh ``COCOeval`` restricted to those images.
"""
import contextlib
import copy
import io
import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def evaluate_segm(gt: COCO, pred_file: str) -> COCOeval:
    """``COCOeval(iouType='segm')`` of ``pred_file`` on every image of
    ``gt``, evaluated (per-image matching done), not yet accumulated.

    Args:
        gt (COCO): The ground truth.
        pred_file (str): A COCO results json (mmdet's
            ``CocoMetric(outfile_prefix=...)`` writes ``<prefix>.segm.json``).
    """
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(pred_file) if _has_results(pred_file) else COCO()
        ev = COCOeval(gt, dt, 'segm')
        ev.params.imgIds = sorted(gt.getImgIds())
        ev.evaluate()
    return ev


def _has_results(pred_file: str) -> bool:
    with open(pred_file, encoding='utf-8') as f:
        return bool(json.load(f))


def subset_ap(ev: COCOeval, img_ids: Optional[Sequence[int]] = None) -> float:
    """Mask AP (×100, COCO's AP@[.5:.95], all areas, 100 detections) on the
    images ``img_ids`` (default: all) of an evaluated ``COCOeval``.

    Classes without ground truth in the subset are left out, as COCO does;
    no ground truth at all gives 0.
    """
    pe = ev._paramsEval
    all_ids = list(pe.imgIds)
    if img_ids is None:
        positions = list(range(len(all_ids)))
    else:
        where = {i: n for n, i in enumerate(all_ids)}
        positions = sorted(where[i] for i in img_ids)
    num_cats = len(pe.catIds) if pe.useCats else 1
    num_areas, num_imgs = len(pe.areaRng), len(all_ids)
    sub = copy.copy(ev)
    sub._paramsEval = copy.deepcopy(pe)
    sub._paramsEval.imgIds = [all_ids[n] for n in positions]
    # only the AP asked for is accumulated: all areas (COCO's first range),
    # the most detections (the number each image was matched with)
    sub._paramsEval.areaRng = pe.areaRng[:1]
    sub._paramsEval.areaRngLbl = pe.areaRngLbl[:1]
    sub._paramsEval.maxDets = pe.maxDets[-1:]
    sub.params = sub._paramsEval
    sub.evalImgs = [
        ev.evalImgs[k * num_areas * num_imgs + n]
        for k in range(num_cats) for n in positions
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        sub.accumulate()
    # precision: [iou thr, recall, class, area range, max dets]
    precision = sub.eval['precision'][:, :, :, 0, 0]
    valid = precision[precision > -1]
    return float(100 * valid.mean()) if valid.size else 0.0


def split_half_noise(gt_file: str,
                     pred_files: Dict[str, str],
                     pairs: Sequence[Tuple[str, str]] = (),
                     num_splits: int = 50,
                     seed: int = 0) -> dict:
    """Standard errors of mask AP, and of paired AP differences, from
    random split halves of the evaluation images.

    Args:
        gt_file (str): The val ground truth (COCO json).
        pred_files (dict): name → COCO results json of a model on those
            images.
        pairs (Sequence[tuple]): ``(name_1, name_2)`` of ``pred_files``
            whose difference ``AP_1 - AP_2`` is claimed.
        num_splits (int): Random splits into two halves (the first
            ``N // 2`` of a permutation, and the rest).
        seed (int): Seed of the permutations.

    Returns:
        dict: ``num_images``, ``num_splits``, ``models`` (name → ``ap``,
        ``se``) and ``pairs`` (``'name_1 - name_2'`` → ``diff``, ``se``).
    """
    if num_splits < 2:
        raise ValueError(f'num_splits must be >= 2, got {num_splits}')
    for name_1, name_2 in pairs:
        for name in (name_1, name_2):
            if name not in pred_files:
                raise ValueError(f'pair ({name_1}, {name_2}): no results '
                                 f'file for {name!r}')
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_file)
    img_ids = sorted(gt.getImgIds())
    if len(img_ids) < 2:
        raise ValueError(f'{gt_file} has {len(img_ids)} image(s): at least '
                         '2 are needed to split')
    evals = {name: evaluate_segm(gt, path) for name, path in pred_files.items()}
    rng = np.random.default_rng(seed)
    halves: List[Dict[str, Tuple[float, float]]] = []
    for _ in range(num_splits):
        order = rng.permutation(len(img_ids))
        half_a = [img_ids[i] for i in order[:len(img_ids) // 2]]
        half_b = [img_ids[i] for i in order[len(img_ids) // 2:]]
        halves.append({name: (subset_ap(ev, half_a), subset_ap(ev, half_b))
                       for name, ev in evals.items()})

    def se(deltas: List[float]) -> float:
        return float(np.std(deltas, ddof=1) / 2)

    models = {
        name: dict(ap=subset_ap(ev),
                   se=se([h[name][0] - h[name][1] for h in halves]))
        for name, ev in evals.items()
    }
    paired = {}
    for name_1, name_2 in pairs:
        deltas = [(h[name_1][0] - h[name_2][0]) - (h[name_1][1] - h[name_2][1])
                  for h in halves]
        paired[f'{name_1} - {name_2}'] = dict(
            diff=models[name_1]['ap'] - models[name_2]['ap'], se=se(deltas))
    return dict(num_images=len(img_ids), num_splits=num_splits,
                models=models, pairs=paired)
