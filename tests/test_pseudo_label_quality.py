# Copyright (c) mmcast contributors. All rights reserved.
"""Pseudo-label precision / recall against ground truth, and the hook that
measures it on the labeled split."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from mmengine.structures import InstanceData

import mmcast  # noqa: F401
from mmcast.pseudo_labels.quality import pseudo_label_quality
from test_pseudo_labels import CLASSES, labeling_cfg, make_data

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
H, W = 20, 20


def _rle(y0, y1, x0, x1):
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    rle = mask_util.encode(np.asfortranarray(mask))
    rle['counts'] = rle['counts'].decode()
    return rle


def _write(path, anns, with_scores):
    images = [dict(id=i, file_name=f'{i}.png', height=H, width=W)
              for i in (1, 2)]
    for k, a in enumerate(anns):
        a.setdefault('id', k + 1)
        a.setdefault('iscrowd', 0)
        if not with_scores:
            a.pop('score', None)
    with open(path, 'w') as f:
        json.dump(dict(images=images, annotations=anns,
                       categories=[dict(id=1, name='a'),
                                   dict(id=2, name='b')]), f)
    return str(path)


@pytest.fixture
def files(tmp_path):
    # image 1: two GT of class 1; image 2: one GT of class 2 (polygon)
    gt = _write(tmp_path / 'gt.json', [
        dict(image_id=1, category_id=1, segmentation=_rle(0, 10, 0, 10)),
        dict(image_id=1, category_id=1, segmentation=_rle(10, 20, 10, 20)),
        dict(image_id=2, category_id=2,
             segmentation=[[0, 0, 10, 0, 10, 10, 0, 10]]),
    ], with_scores=False)
    pseudo = _write(tmp_path / 'pseudo.json', [
        # TP 0.9, its duplicate 0.8 (FP), a wrong-class copy 0.4 (FP)
        dict(image_id=1, category_id=1, segmentation=_rle(0, 10, 0, 10),
             score=0.9),
        dict(image_id=1, category_id=1, segmentation=_rle(0, 10, 1, 10),
             score=0.8),
        dict(image_id=1, category_id=2, segmentation=_rle(10, 20, 10, 20),
             score=0.4),
        # image 2: TP at 0.5, a background FP at 0.2
        dict(image_id=2, category_id=2, segmentation=_rle(0, 10, 0, 10),
             score=0.5),
        dict(image_id=2, category_id=2, segmentation=_rle(15, 20, 15, 20),
             score=0.2),
    ], with_scores=True)
    return pseudo, gt


def test_precision_recall_per_threshold(files):
    q = pseudo_label_quality(*files, score_thrs=(0.1, 0.3, 0.6, 0.85))
    assert q['num_images'] == 2 and q['gt_per_image'] == 1.5
    assert q['median_score'] == pytest.approx(0.5)
    got = {r['score_thr']: r for r in q['sweep']}
    # 0.1: 5 pseudo, TP 2 of 3 GT; 0.3: 4 / 2; 0.6: 2 / 1; 0.85: 1 / 1
    for thr, (n, tp) in {0.1: (5, 2), 0.3: (4, 2), 0.6: (2, 1),
                         0.85: (1, 1)}.items():
        assert got[thr]['per_image'] == n / 2
        assert got[thr]['precision'] == pytest.approx(tp / n)
        assert got[thr]['recall'] == pytest.approx(tp / 3)
    f1 = {t: r['f1'] for t, r in got.items()}
    assert q['best_f1_thr'] == max(f1, key=f1.get) == 0.3


def test_polygon_ground_truth_and_the_iou_threshold(files, tmp_path):
    # the 10x10 polygon of image 2 rasterises to the same pixels as the
    # square RLE: both matches survive IoU 0.95
    q = pseudo_label_quality(*files, score_thrs=(0.1,), iou_thr=0.95)
    assert q['sweep'][0]['recall'] == pytest.approx(2 / 3)
    # the duplicate shifted by one column (IoU 0.9 with the first GT) is a
    # TP at IoU 0.5 once the exact copy is gone, and not at 0.95
    pseudo, gt = files
    data = json.load(open(pseudo))
    data['annotations'] = data['annotations'][1:2]
    shifted = tmp_path / 'shifted.json'
    shifted.write_text(json.dumps(data))
    assert pseudo_label_quality(str(shifted), gt, (0.1,))['sweep'][0][
        'precision'] == 1.0
    assert pseudo_label_quality(str(shifted), gt, (0.1,), iou_thr=0.95)[
        'sweep'][0]['precision'] == 0.0


def test_bad_input_is_named(files, tmp_path):
    pseudo, gt = files
    with pytest.raises(ValueError, match='no "score"'):
        pseudo_label_quality(gt, gt)
    other = tmp_path / 'other.json'
    other.write_text(json.dumps(dict(
        images=[dict(id=1, file_name='x.png', height=H, width=W)],
        annotations=[])))
    with pytest.raises(ValueError, match='matched by file_name'):
        pseudo_label_quality(pseudo, str(other))
    (tmp_path / 'bad.json').write_text('{')
    with pytest.raises(ValueError, match='bad.json'):
        pseudo_label_quality(pseudo, str(tmp_path / 'bad.json'))


def test_cli_prints_the_sweep(files, tmp_path):
    out = tmp_path / 'q.json'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'analysis',
                                  'pseudo_label_quality.py'), *files,
         '--score-thrs', '0.3', '0.6', '--out', str(out)],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'best F1 at 0.3' in proc.stdout
    assert json.loads(out.read_text())['sweep'][1]['score_thr'] == 0.6


class GTCopyTeacher(torch.nn.Module):
    """Per image: the GT square of ``make_data`` (score 0.9, class 'car')
    and a false positive elsewhere (score 0.5)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.batches = 0

    def test_step(self, data):
        self.batches += 1
        out = []
        for sample in data['data_samples']:
            h, w = sample.ori_shape
            masks = torch.zeros(2, h, w)
            masks[0, 1:11, 1:11] = 1
            masks[1, 20:30, 30:44] = 1
            car = CLASSES.index('car')
            sample.pred_instances = InstanceData(
                masks=masks, labels=torch.tensor([car, car]),
                scores=torch.tensor([0.9, 0.5]))
            out.append(sample)
        return out


def _train_with_hook(root, **hook_args) -> torch.nn.Module:
    """One iteration of a model whose ``.teacher`` is a
    :class:`GTCopyTeacher`, with a PseudoLabelHook labeling ``u.json``
    (and measuring on it) into ``pl/pseudo.json``; the model."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Student(BaseModel):

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.teacher = GTCopyTeacher()

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return dict(loss=(self.w * 0).sum())

    student = Student()
    Runner(
        model=student,
        work_dir=str(root / 'work'),
        train_dataloader=dict(
            batch_size=1, num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate'),
            dataset=dict(
                type='PseudoLabeledDataset', data_root=str(root),
                ann_file='pl/pseudo.json', unlabeled_ann_file='u.json',
                data_prefix=dict(img='img/'),
                metainfo=dict(classes=CLASSES),
                pipeline=[dict(type='LoadImageFromFile'),
                          dict(type='PackDetInputs')])),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.0)),
        default_hooks=dict(checkpoint=None, logger=None),
        custom_hooks=[dict(
            type='PseudoLabelHook',
            unlabeled_dataset=labeling_cfg(root),
            quality_dataset=labeling_cfg(root),
            batch_size=3, **hook_args)],
        default_scope='mmdet').train()
    return student


def test_hook_measures_quality_once_per_teacher(tmp_path, monkeypatch):
    monkeypatch.setenv('MMCAST_CACHE_DIR', str(tmp_path / 'cache'))
    root = tmp_path
    make_data(str(root), num=3, with_gt=True)

    def run():
        return _train_with_hook(root, filter_cfg=dict(score_thr=0.7),
                                quality_score_thrs=(0.3, 0.7))

    student = run()
    # 1 batch for the unlabeled set, 1 for the quality set
    assert student.teacher.batches == 2
    quality = json.loads((root / 'pl' / 'pseudo.quality.json').read_text())
    low, high = quality['sweep']
    assert (low['precision'], low['recall'], low['per_image']) == (0.5, 1, 2)
    assert (high['precision'], high['recall'], high['per_image']) == (1, 1, 1)
    assert quality['best_f1_thr'] == 0.7 and quality['filter_score_thr'] == 0.7
    # the labels behind it were made with the lowest threshold swept
    labeled = json.loads(
        (root / 'pl' / 'pseudo.labeled_split.json').read_text())
    assert len(labeled['annotations']) == 6
    # same teacher and filter: neither labeled nor measured again
    assert run().teacher.batches == 0


def test_hook_chooses_the_score_threshold_on_the_quality_set(
        tmp_path, monkeypatch):
    """score_thr='auto': D_l first, then D_u at D_l's best-F1 threshold."""
    monkeypatch.setenv('MMCAST_CACHE_DIR', str(tmp_path / 'cache'))
    root = tmp_path
    make_data(str(root), num=3, with_gt=True)
    pseudo, quality_file = root / 'pl' / 'pseudo.json', \
        root / 'pl' / 'pseudo.quality.json'

    def run(thrs):
        return _train_with_hook(root, filter_cfg=dict(score_thr='auto'),
                                quality_score_thrs=thrs)

    student = run((0.3, 0.7))
    assert student.teacher.batches == 2  # the quality set, then D_u
    data = json.loads(pseudo.read_text())
    # the false positives (score 0.5) are below the chosen 0.7
    assert len(data['annotations']) == 3
    assert data['info']['mmcast_pseudo_labels']['filter']['score_thr'] == 0.7
    quality = json.loads(quality_file.read_text())
    assert quality['best_f1_thr'] == 0.7
    assert quality['filter_score_thr'] == 'auto'
    # the same teacher: the threshold is read back, nothing is relabeled
    assert run((0.3, 0.7)).teacher.batches == 0
    # another sweep, where 0.3 and 0.4 tie (the lowest wins): measured
    # again, and D_u relabeled with the false positives
    assert run((0.3, 0.4)).teacher.batches == 2
    data = json.loads(pseudo.read_text())
    assert data['info']['mmcast_pseudo_labels']['filter']['score_thr'] == 0.3
    assert len(data['annotations']) == 6


def test_hook_auto_threshold_needs_a_quality_dataset(tmp_path):
    from mmcast.engine.hooks.pseudo_label_hook import PseudoLabelHook
    with pytest.raises(ValueError, match='quality_dataset'):
        PseudoLabelHook(unlabeled_dataset=labeling_cfg(tmp_path),
                        filter_cfg=dict(score_thr='auto'))
