# Copyright (c) mmcast contributors. All rights reserved.
"""Split-half standard errors of mask AP (``mmcast.evaluation``)."""
import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mmcast.evaluation import evaluate_segm, split_half_noise, subset_ap

H = W = 32


def _rle(x0, y0, size, canvas=(H, W)):
    m = np.zeros(canvas, dtype=np.uint8, order='F')
    m[y0:y0 + size, x0:x0 + size] = 1
    rle = mask_utils.encode(m)
    rle['counts'] = rle['counts'].decode()
    return rle


def _dataset(tmp_path, num_images=24, seed=0):
    """GT squares (2 classes) and three prediction files: perfect, one that
    shifts half of the masks and drops some, and one worse."""
    rng = np.random.default_rng(seed)
    images, anns, perfect, shifted, worse = [], [], [], [], []
    for img_id in range(1, num_images + 1):
        images.append(dict(id=img_id, file_name=f'{img_id}.png', height=H,
                           width=W))
        for _ in range(rng.integers(1, 4)):
            x0, y0 = (int(v) for v in rng.integers(0, 16, 2))
            size = 8
            cat = int(rng.integers(1, 3))
            rle = _rle(x0, y0, size)
            anns.append(dict(id=len(anns) + 1, image_id=img_id,
                             category_id=cat, segmentation=rle, area=size**2,
                             bbox=[x0, y0, size, size], iscrowd=0))
            perfect.append(dict(image_id=img_id, category_id=cat,
                                segmentation=rle, score=1.0))
            shift = int(rng.integers(0, 5))
            score = float(rng.uniform(0.3, 1.0))
            if rng.random() > 0.15:
                shifted.append(dict(image_id=img_id, category_id=cat,
                                    segmentation=_rle(x0 + shift, y0, size),
                                    score=score))
            if rng.random() > 0.4:
                worse.append(dict(image_id=img_id, category_id=cat,
                                  segmentation=_rle(x0 + 2 * shift, y0, size),
                                  score=score))
    gt = dict(images=images, annotations=anns,
              categories=[dict(id=1, name='a'), dict(id=2, name='b')])
    files = {}
    for name, data in (('gt', gt), ('perfect', perfect), ('shifted', shifted),
                       ('worse', worse)):
        files[name] = str(tmp_path / f'{name}.json')
        with open(files[name], 'w') as f:
            json.dump(data, f)
    return files


def _fresh_ap(gt_file, pred_file, img_ids):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_file)
        ev = COCOeval(gt, gt.loadRes(pred_file), 'segm')
        ev.params.imgIds = sorted(img_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return 100 * ev.stats[0]


def test_subset_ap_equals_a_fresh_evaluation(tmp_path):
    files = _dataset(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(files['gt'])
    ev = evaluate_segm(gt, files['shifted'])
    ids = sorted(gt.getImgIds())
    assert subset_ap(ev) == pytest.approx(
        _fresh_ap(files['gt'], files['shifted'], ids), abs=1e-9)
    half = ids[1::2]
    assert subset_ap(ev, half) == pytest.approx(
        _fresh_ap(files['gt'], files['shifted'], half), abs=1e-9)
    assert subset_ap(ev, half) != pytest.approx(subset_ap(ev), abs=1e-3)


def test_subset_ap_is_all_areas_at_100_detections(tmp_path):
    """Small and medium objects, and more than 10 detections an image (the
    late ones right): an AP of one area range or of 10 detections would
    differ from COCO's AP."""
    size, rng = 128, np.random.default_rng(1)

    def rle(x0, y0, side):
        return _rle(x0, y0, side, canvas=(size, size))

    images, anns, preds = [], [], []
    for img_id in range(1, 9):
        images.append(dict(id=img_id, file_name=f'{img_id}.png',
                           height=size, width=size))
        for n, side in enumerate((6, 8, 40, 44)):  # 2 small, 2 medium
            x0, y0 = 50 * (n % 2), 50 * (n // 2) + int(rng.integers(0, 8))
            anns.append(dict(id=len(anns) + 1, image_id=img_id,
                             category_id=1, segmentation=rle(x0, y0, side),
                             area=side**2, bbox=[x0, y0, side, side],
                             iscrowd=0))
            # 3 wrong detections, scored above the right one
            for k in range(3):
                preds.append(dict(image_id=img_id, category_id=1,
                                  segmentation=rle(x0 + 3 + k, y0 + 9, side),
                                  score=0.9 - 0.01 * k))
            if side != 6 or img_id % 2:
                preds.append(dict(image_id=img_id, category_id=1,
                                  segmentation=rle(x0, y0, side),
                                  score=float(rng.uniform(0.2, 0.5))))
    files = {}
    for name, data in (('gt', dict(images=images, annotations=anns,
                                   categories=[dict(id=1, name='a')])),
                       ('pred', preds)):
        files[name] = str(tmp_path / f'{name}.json')
        with open(files[name], 'w') as f:
            json.dump(data, f)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(files['gt'])
    ev = evaluate_segm(gt, files['pred'])
    for ids in (range(1, 9), [2, 3, 5, 8]):
        assert subset_ap(ev, list(ids)) == pytest.approx(
            _fresh_ap(files['gt'], files['pred'], ids), abs=1e-9)


def _fresh_split_half(files, names, num_splits, seed):
    """The split-half standard errors by their definition, each half's AP
    from a fresh ``COCOeval``: per model (and of the first model minus the
    second) the std of AP(A) - AP(B) over the splits, halved. The halves:
    the first N // 2 images of a permutation of the image ids, and the
    rest."""
    with contextlib.redirect_stdout(io.StringIO()):
        ids = sorted(COCO(files['gt']).getImgIds())
    rng = np.random.default_rng(seed)
    deltas = {name: [] for name in names}
    for _ in range(num_splits):
        order = rng.permutation(len(ids))
        halves = ([ids[i] for i in order[:len(ids) // 2]],
                  [ids[i] for i in order[len(ids) // 2:]])
        for name in names:
            a, b = (_fresh_ap(files['gt'], files[name], half)
                    for half in halves)
            deltas[name].append(a - b)
    paired = np.subtract(*(deltas[name] for name in names))
    return ({name: np.std(d, ddof=1) / 2 for name, d in deltas.items()},
            np.std(paired, ddof=1) / 2)


def test_split_half_standard_errors(tmp_path):
    files = _dataset(tmp_path)
    out = split_half_noise(
        files['gt'], {k: files[k] for k in ('perfect', 'shifted', 'worse')},
        pairs=[('shifted', 'worse')], num_splits=8, seed=1)
    assert out['num_images'] == 24 and out['num_splits'] == 8
    perfect, shifted, worse = (out['models'][k]
                               for k in ('perfect', 'shifted', 'worse'))
    # a perfect model scores 100 on every half: no evaluation noise
    assert perfect['ap'] == pytest.approx(100.0)
    assert perfect['se'] == pytest.approx(0.0, abs=1e-9)
    assert 0 < worse['ap'] < shifted['ap'] < 100
    fresh = {name: _fresh_ap(files['gt'], files[name], range(1, 25))
             for name in ('shifted', 'worse')}
    assert shifted['ap'] == pytest.approx(fresh['shifted'], abs=1e-9)
    assert worse['ap'] == pytest.approx(fresh['worse'], abs=1e-9)
    se, paired_se = _fresh_split_half(files, ('shifted', 'worse'), 8, 1)
    assert shifted['se'] == pytest.approx(se['shifted'], rel=1e-9)
    assert worse['se'] == pytest.approx(se['worse'], rel=1e-9)
    assert se['shifted'] > 0.5 and se['worse'] > 0.5  # the halves differ
    pair = out['pairs']['shifted - worse']
    assert pair['diff'] == pytest.approx(fresh['shifted'] - fresh['worse'],
                                         abs=1e-9)
    assert pair['se'] == pytest.approx(paired_se, rel=1e-9)
    # same splits, same numbers
    again = split_half_noise(
        files['gt'], {k: files[k] for k in ('shifted', 'worse')},
        pairs=[('shifted', 'worse')], num_splits=8, seed=1)
    assert again['pairs'] == out['pairs']


def test_split_half_bad_input(tmp_path):
    files = _dataset(tmp_path, num_images=4)
    with pytest.raises(ValueError, match="no results file for 'nope'"):
        split_half_noise(files['gt'], {'shifted': files['shifted']},
                         pairs=[('shifted', 'nope')])
    with pytest.raises(ValueError, match='num_splits'):
        split_half_noise(files['gt'], {'shifted': files['shifted']},
                         num_splits=1)
