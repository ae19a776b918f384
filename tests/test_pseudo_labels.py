# Copyright (c) mmcast contributors. All rights reserved.
"""Offline pseudo-labels: filter, COCO writer, labeler, dataset, hook, CLI."""
import json
import logging
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from mmengine.structures import InstanceData
from pycocotools.coco import COCO

import mmcast  # noqa: F401
import mmcast.pseudo_labels.labeler as labeler_mod
from mmcast.datasets.pseudo_labeled_dataset import PseudoLabeledDataset
from mmcast.engine.hooks.pseudo_label_hook import (
    PseudoLabelHook, find_pseudo_labeled_datasets)
from mmcast.models.teachers.labeling_teacher import LabelingTeacher
from mmcast.pseudo_labels import (LabelingSettings, OfflineLabelingJob,
                                  PseudoLabelFilter, identity,
                                  instances_to_coco_annotations, is_current,
                                  label_unlabeled_set, make_header,
                                  merge_pseudo_label_shards, read_header,
                                  shard_path, write_pseudo_label_json)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CAT_IDS = [24, 25, 26, 27, 28, 31, 32, 33]
CLASSES = ('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
           'bicycle')
H, W = 32, 48
META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')
TEST_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 40), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=META_KEYS)
]


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    """Private sha256 cache; mmdet scope for datasets built by hand."""
    from mmengine.registry import DefaultScope
    monkeypatch.setenv('MMCAST_CACHE_DIR', str(tmp_path / 'cache'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def make_data(root, num=6, corrupt=False, with_gt=False) -> str:
    """``num`` PNGs under ``root/img`` and ``root/u.json`` (images only,
    or with ground truth that must never reach the student)."""
    os.makedirs(osp.join(root, 'img'), exist_ok=True)
    rng = np.random.RandomState(0)
    images, anns = [], []
    for i in range(num):
        name = f'city_{i:03d}_leftImg8bit.png'
        cv2.imwrite(
            osp.join(root, 'img', name),
            rng.randint(0, 255, (H, W, 3)).astype(np.uint8))
        images.append(dict(id=100 + i, file_name=name, height=H, width=W))
        if with_gt:
            anns.append(
                dict(id=i + 1, image_id=100 + i, category_id=26,
                     bbox=[1, 1, 10, 10], area=100, iscrowd=0,
                     segmentation=[[1, 1, 11, 1, 11, 11, 1, 11]]))
    if corrupt:
        with open(osp.join(root, 'img', 'garbage.png'), 'wb') as f:
            f.write(b'\x89PNG this is not an image' + bytes(range(256)))
        images.insert(2, dict(id=900, file_name='garbage.png', height=H,
                              width=W))
        images.append(dict(id=901, file_name='missing.png', height=H,
                           width=W))
    coco = dict(
        images=images,
        annotations=anns,
        categories=[dict(id=c, name=n) for c, n in zip(CAT_IDS, CLASSES)])
    path = osp.join(root, 'u.json')
    with open(path, 'w') as f:
        json.dump(coco, f)
    return path


def labeling_cfg(root) -> dict:
    return dict(
        type='CityscapesDataset',
        data_root=str(root),
        ann_file='u.json',
        data_prefix=dict(img='img/'),
        pipeline=TEST_PIPELINE)


class FakeTeacher(torch.nn.Module):
    """``test_step`` like an MMDet detector; deterministic instances.

    Per image: a top-left box (score 0.9, label img_id % 8), a left band
    overlapping it (0.6, float mask 0.8), a low-score one (0.1).
    """

    def __init__(self, fail_after_batches=None):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.fail_after_batches = fail_after_batches
        self.batches = 0
        self.seen = []

    def test_step(self, data):
        if self.fail_after_batches is not None and \
                self.batches >= self.fail_after_batches:
            raise RuntimeError('simulated kill')
        self.batches += 1
        out = []
        for sample in data['data_samples']:
            h, w = sample.ori_shape
            self.seen.append(sample.img_id)
            masks = torch.zeros(3, h, w)
            masks[0, :h // 2, :w // 2] = 1
            masks[1, :, :w // 3] = 0.8
            masks[2, -4:, -4:] = 1
            sample.pred_instances = InstanceData(
                masks=masks,
                labels=torch.tensor([sample.img_id % 8, 1, 2]),
                scores=torch.tensor([0.9, 0.6, 0.1]))
            out.append(sample)
        return out


def _instances(masks, labels, scores):
    return InstanceData(
        masks=torch.as_tensor(np.asarray(masks)),
        labels=torch.tensor(labels),
        scores=torch.tensor(scores, dtype=torch.float32))


# --------------------------------------------------------------------------
# filter
# --------------------------------------------------------------------------
def test_filter_thresholds_order_overlap_and_boxes():
    m = np.zeros((5, 8, 10), np.float32)
    m[0, 0:4, 0:4] = 0.7  # score 0.5
    m[1, 2:6, 2:6] = 0.9  # score 0.95 -> first, takes the overlap
    m[2, 0:2, 0:2] = 0.4  # below mask_thr -> empty -> dropped
    m[3, 5:8, 5:10] = 1.0  # score 0.2 -> below score_thr
    m[4, 2:4, 2:4] = 1.0  # inside mask 1 -> empty after painting
    inst = _instances(m, [0, 1, 2, 3, 4], [0.5, 0.95, 0.8, 0.2, 0.6])
    out = PseudoLabelFilter(score_thr=0.3, mask_thr=0.5)(inst)
    assert out.masks.dtype == torch.bool
    assert out.labels.tolist() == [1, 0]
    assert out.scores.tolist() == pytest.approx([0.95, 0.5])
    # non-overlapping: no pixel in two masks; mask 1 keeps all its pixels
    assert out.masks.sum(0).max() == 1
    assert out.masks[0].sum() == 16 and out.masks[1].sum() == 16 - 4
    assert out.bboxes.tolist() == [[2, 2, 6, 6], [0, 0, 4, 4]]

    # overlap allowed: the contained mask survives
    out = PseudoLabelFilter(score_thr=0.3, non_overlapping=False)(inst)
    assert out.labels.tolist() == [1, 4, 0]
    # max_per_image keeps the best scores
    out = PseudoLabelFilter(dict(score_thr=0.0, max_per_image=2,
                                 non_overlapping=False))(inst)
    assert out.labels.tolist() == [1]  # the 2nd best (label 2) is empty
    # min_area
    out = PseudoLabelFilter(score_thr=0.3, min_area=13)(inst)
    assert out.labels.tolist() == [1]


def test_filter_bool_masks_and_empty_input():
    m = torch.zeros(2, 4, 4, dtype=torch.bool)
    m[0, 0, 0] = True
    out = PseudoLabelFilter()(
        InstanceData(masks=m, labels=torch.tensor([3, 4]),
                     scores=torch.tensor([0.9, 0.8])))
    assert out.labels.tolist() == [3]
    assert out.bboxes.tolist() == [[0, 0, 1, 1]]
    empty = PseudoLabelFilter()(
        InstanceData(masks=torch.zeros(0, 4, 4), labels=torch.zeros(0),
                     scores=torch.zeros(0)))
    assert empty.masks.shape == (0, 4, 4) and len(empty.bboxes) == 0


@pytest.mark.parametrize('bad', [
    dict(score_thr=1.5), dict(score_thr='0.3'), dict(mask_thr=1.0),
    dict(max_per_image=0), dict(max_per_image=2.5), dict(min_area=0),
    dict(non_overlapping='yes'), dict(scor_thr=0.3)
])
def test_filter_validation(bad):
    key = next(iter(bad))
    with pytest.raises(ValueError, match=key):
        PseudoLabelFilter(bad)


# --------------------------------------------------------------------------
# writer + datasets
# --------------------------------------------------------------------------
def test_writer_roundtrip_pycocotools_and_mmdet(tmp_path):
    root = tmp_path
    unl = make_data(str(root), num=2, with_gt=True)
    masks = np.zeros((2, H, W), bool)
    masks[0, 3:10, 5:20] = True
    masks[1, 20:30, 30:47] = True
    inst = PseudoLabelFilter()(_instances(masks, [0, 5], [0.9, 0.7]))
    anns = instances_to_coco_annotations(inst, 100, CAT_IDS, start_id=1)
    assert [a['category_id'] for a in anns] == [24, 31]
    assert anns[0]['bbox'] == [5.0, 3.0, 15.0, 7.0]
    assert isinstance(anns[0]['segmentation']['counts'], str)
    assert anns[0]['score'] == pytest.approx(0.9)
    assert anns[0]['area'] == 15 * 7

    with open(unl) as f:
        u = json.load(f)
    header = make_header('teacher.py', unl, unl, dict(score_thr=0.3))
    out = str(root / 'pl' / 'pl.json')
    write_pseudo_label_json(out, dict(header, num_images=2), u['images'],
                            u['categories'], anns)
    assert read_header(out)['teacher'] == 'teacher.py'
    coco = COCO(out)
    got = [coco.annToMask(a) for a in coco.loadAnns(coco.getAnnIds([100]))]
    np.testing.assert_array_equal(np.stack(got), masks)
    assert coco.getAnnIds([101]) == []

    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    ]
    from mmdet.datasets import CityscapesDataset
    ds = CityscapesDataset(
        data_root=str(root), ann_file=out, data_prefix=dict(img='img/'),
        pipeline=train_pipeline, filter_cfg=dict(filter_empty_gt=False))
    item = ds.prepare_data(0)
    np.testing.assert_array_equal(item['gt_masks'].to_ndarray(), masks)
    assert item['gt_bboxes_labels'].tolist() == [0, 5]

    # PseudoLabeledDataset: images only (no leaked GT) until the file exists
    pl_cfg = dict(
        data_root=str(root), ann_file='pl/later.json',
        unlabeled_ann_file='u.json',
        data_prefix=dict(img='img/'), metainfo=dict(classes=CLASSES),
        pipeline=train_pipeline, filter_cfg=dict(filter_empty_gt=True))
    pds = PseudoLabeledDataset(**pl_cfg)
    assert len(pds) == 2 and not pds.pseudo_labels_loaded
    assert pds.get_data_info(0)['instances'] == []
    os.replace(out, str(root / 'pl' / 'later.json'))
    assert pds.reload()
    assert len(pds) == 2 and [pds.get_data_info(i)['img_id']
                              for i in range(2)] == [100, 101]
    np.testing.assert_array_equal(
        pds.prepare_data(0)['gt_masks'].to_ndarray(), masks)
    assert pds.prepare_data(1)['gt_masks'].to_ndarray().shape[0] == 0


def test_is_current(tmp_path):
    unl = make_data(str(tmp_path), num=1)
    ckpt = str(tmp_path / 'teacher.pth')
    with open(ckpt, 'wb') as f:
        f.write(b'weights v1')
    out = str(tmp_path / 'pl.json')
    header = make_header('teacher.py', ckpt, unl, dict(score_thr=0.3))
    assert not is_current(out, identity(header))  # missing
    write_pseudo_label_json(out, header, [], [], [])
    assert is_current(out, identity(header))
    assert not is_current(
        out, identity(make_header('teacher.py', ckpt, unl,
                                  dict(score_thr=0.5))))
    assert not is_current(
        out, identity(make_header('teacher.py', ckpt, unl,
                                  dict(max_per_image=50))))
    assert not is_current(
        out, identity(make_header('other.py', ckpt, unl, None)))
    with open(ckpt, 'wb') as f:
        f.write(b'weights v2, retrained')
    assert not is_current(
        out, identity(make_header('teacher.py', ckpt, unl,
                                  dict(score_thr=0.3))))
    with open(out, 'w') as f:
        f.write('{"info": {"mmcast_pseudo_labels": ')  # truncated
    assert not is_current(out, identity(header))


# --------------------------------------------------------------------------
# labeler
# --------------------------------------------------------------------------
def _ids_in(path):
    return [img['id'] for img in COCO(path).dataset['images']]


def test_kill_then_resume_does_not_redo_images(tmp_path):
    root = tmp_path
    make_data(str(root), num=7)
    out = str(root / 'out' / 'pl.json')
    cfg = labeling_cfg(root)
    teacher = FakeTeacher(fail_after_batches=2)
    with pytest.raises(RuntimeError, match='simulated kill'):
        label_unlabeled_set(teacher, cfg, out, batch_size=2,
                            header=dict(teacher='fake'))
    assert not osp.exists(out)
    shard = shard_path(out, 0)
    with open(shard) as f:
        assert len(f.read().splitlines()) == 1 + 4  # identity + 2 batches
    with open(shard, 'a') as f:  # killed in the middle of a write
        f.write('{"image_id": 104, "annotations": [{"id"')

    teacher = FakeTeacher()
    res = label_unlabeled_set(teacher, cfg, out, batch_size=2,
                              header=dict(teacher='fake'))
    assert res['merged'] and res['num_resumed'] == 4
    assert res['num_processed'] == 3 and teacher.seen == [104, 105, 106]
    assert not osp.exists(shard)
    coco = COCO(out)
    assert _ids_in(out) == [100 + i for i in range(7)]
    header = read_header(out)
    assert header['num_images'] == 7 and header['num_skipped'] == 0
    # the overlap was painted away, the low score dropped: 2 per image
    assert header['num_instances'] == 14 == len(coco.dataset['annotations'])
    ids = [a['id'] for a in coco.dataset['annotations']]
    assert sorted(ids) == list(range(1, 15))
    m = [coco.annToMask(a) for a in coco.loadAnns(coco.getAnnIds([103]))]
    assert (np.stack(m).sum(0) <= 1).all()

    # a different filter discards the stale shard instead of reusing it
    teacher = FakeTeacher(fail_after_batches=1)
    with pytest.raises(RuntimeError):
        label_unlabeled_set(teacher, cfg, out, batch_size=2,
                            header=dict(teacher='fake'))
    teacher = FakeTeacher()
    res = label_unlabeled_set(teacher, cfg, out, batch_size=2,
                              filter_cfg=dict(score_thr=0.05),
                              header=dict(teacher='fake'))
    assert res['num_resumed'] == 0 and len(teacher.seen) == 7
    assert read_header(out)['num_instances'] == 21


def capture_print_log(monkeypatch, module) -> list:
    """The messages ``module`` logs with ``print_log`` (still logged)."""
    logged = []
    real = module.print_log

    def capture(msg, *args, **kwargs):
        logged.append(msg)
        real(msg, *args, **kwargs)

    monkeypatch.setattr(module, 'print_log', capture)
    return logged


def test_corrupt_and_missing_images_are_skipped(tmp_path, monkeypatch):
    root = tmp_path
    make_data(str(root), num=3, corrupt=True)
    logged = capture_print_log(monkeypatch, labeler_mod)
    out = str(root / 'pl.json')
    # 2 of 5 unreadable: allowed here (the default stops above 5 %)
    res = label_unlabeled_set(FakeTeacher(), labeling_cfg(root), out,
                              batch_size=2, header=dict(teacher='fake'),
                              max_unreadable=0.5)
    assert res['num_skipped'] == 2
    warnings = [m for m in logged if 'skipping unreadable image' in m]
    assert any('garbage.png' in m for m in warnings)
    assert any('missing.png' in m for m in warnings)
    header = read_header(out)
    assert header['num_skipped'] == 2 and header['num_images'] == 5
    assert sorted(osp.basename(p) for p in header['skipped']) == \
        ['garbage.png', 'missing.png']
    coco = COCO(out)
    assert coco.getAnnIds([900]) == [] and coco.imgs[900]['mmcast_skipped']
    assert len(coco.getAnnIds([100])) == 2

    # the student's dataset keeps the index but never serves them
    ds = PseudoLabeledDataset(
        data_root=str(root), ann_file='pl.json', unlabeled_ann_file='u.json',
        data_prefix=dict(img='img/'), metainfo=dict(classes=CLASSES),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_mask=True)])
    assert len(ds) == 5
    assert ds.prepare_data(2) is None
    assert ds[2]['img_id'] in (100, 101, 102)


def test_sharding_two_ranks(tmp_path):
    root = tmp_path
    make_data(str(root), num=7)
    out = str(root / 'pl.json')
    cfg = labeling_cfg(root)
    t0, t1 = FakeTeacher(), FakeTeacher()
    r0 = label_unlabeled_set(t0, cfg, out, rank=0, world_size=2,
                             header=dict(teacher='fake'))
    assert not r0['merged'] and not osp.exists(out)
    r1 = label_unlabeled_set(t1, cfg, out, rank=1, world_size=2,
                             header=dict(teacher='fake'))
    assert t0.seen == [100, 102, 104, 106] and t1.seen == [101, 103, 105]
    assert r1['merged']
    assert not set(t0.seen) & set(t1.seen)
    assert sorted(t0.seen + t1.seen) == _ids_in(out)
    assert read_header(out)['num_instances'] == 14
    assert not [p for p in os.listdir(root) if '.partial.' in p]

    # resuming with another world size: rank 0 of 2 did its share, then a
    # single process finishes the rest; merge_pseudo_label_shards works too
    out2 = str(root / 'pl2.json')
    label_unlabeled_set(FakeTeacher(), cfg, out2, rank=0, world_size=2,
                        header=dict(teacher='fake'))
    with pytest.raises(RuntimeError, match='3 of 7 images'):
        merge_pseudo_label_shards(
            out2, cfg, dict(teacher='fake', filter=PseudoLabelFilter().cfg))
    t = FakeTeacher()
    res = label_unlabeled_set(t, cfg, out2, header=dict(teacher='fake'))
    assert t.seen == [101, 103, 105] and res['merged']
    assert _ids_in(out2) == _ids_in(out)


# --------------------------------------------------------------------------
# hook
# --------------------------------------------------------------------------
def test_hook_missing_checkpoint_names_path(tmp_path):
    missing = str(tmp_path / 'nowhere' / 'teacher_final.pth')
    hook = PseudoLabelHook(
        unlabeled_dataset=labeling_cfg(tmp_path),
        teacher_config=osp.join(
            REPO, 'configs/mmcast/_base_/models/mask2former_r18_toy.py'),
        teacher_checkpoint=missing)
    with pytest.raises(FileNotFoundError, match='teacher_final.pth'):
        hook.before_run(None)
    with pytest.raises(FileNotFoundError, match=missing):
        hook.before_train(None)
    with pytest.raises(ValueError, match='mode'):
        PseudoLabelHook(unlabeled_dataset=labeling_cfg(tmp_path),
                        mode='sometimes')
    with pytest.raises(ValueError, match='score_thr'):
        PseudoLabelHook(unlabeled_dataset=labeling_cfg(tmp_path),
                        filter_cfg=dict(score_thr=2))


def test_hook_end_to_end_with_runner(tmp_path):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    root = tmp_path
    make_data(str(root), num=4, with_gt=True)

    class Student(BaseModel):

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.teacher = FakeTeacher()
            self.seen = {}

        def forward(self, inputs, data_samples=None, mode='tensor'):
            for s in data_samples:
                self.seen[s.img_id] = len(s.gt_instances)
            return dict(loss=(self.w * 0).sum())

    def run(num_workers):
        student = Student()
        runner = Runner(
            model=student,
            work_dir=str(root / 'work'),
            train_dataloader=dict(
                batch_size=2,
                num_workers=num_workers,
                persistent_workers=num_workers > 0,
                # InfiniteSampler with workers is refused (see
                # mmcast.engine.train_dataloader_restart)
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='pseudo_collate'),
                dataset=dict(
                    type='ConcatDataset',
                    datasets=[
                        dict(
                            type='PseudoLabeledDataset',
                            data_root=str(root),
                            ann_file='pl/pseudo.json',
                            unlabeled_ann_file='u.json',
                            data_prefix=dict(img='img/'),
                            metainfo=dict(classes=CLASSES),
                            pipeline=[
                                dict(type='LoadImageFromFile'),
                                dict(type='LoadAnnotations', with_bbox=True,
                                     with_mask=True),
                                dict(type='PackDetInputs')
                            ])
                    ])),
            train_cfg=dict(type='IterBasedTrainLoop', max_iters=2),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.0)),
            default_hooks=dict(checkpoint=None, logger=None),
            custom_hooks=[
                dict(
                    type='PseudoLabelHook',
                    unlabeled_dataset=labeling_cfg(root),
                    filter_cfg=dict(score_thr=0.3),
                    batch_size=2)
            ],
            default_scope='mmdet')
        runner.train()
        return runner, student

    runner, student = run(num_workers=1)
    out = str(root / 'pl' / 'pseudo.json')
    header = read_header(out)
    written = os.stat(out).st_mtime_ns
    assert header['teacher'].startswith('runner.model.teacher')
    assert header['checkpoint_sha256'].startswith('state_dict:')
    assert student.teacher.batches == 2
    (ds, ) = find_pseudo_labeled_datasets(runner.train_dataloader.dataset)
    assert ds.pseudo_labels_loaded
    # the student trained on the pseudo-labels (not the hidden GT, not none)
    coco = COCO(out)
    assert student.seen and all(
        n == len(coco.getAnnIds([img_id])) == 2
        for img_id, n in student.seen.items())

    runner, student = run(num_workers=0)  # current: no relabeling
    assert student.teacher.batches == 0
    assert os.stat(out).st_mtime_ns == written
    assert all(n == 2 for n in student.seen.values())


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------
def _cli(*args):
    return subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'pseudo_label.py'), *args],
        cwd=REPO, capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='2'))


def test_cli_missing_checkpoint(tmp_path):
    missing = str(tmp_path / 'no_such_teacher.pth')
    proc = _cli(
        osp.join(REPO, 'configs/mmcast/_base_/models/mask2former_r18_toy.py'),
        missing, '--unlabeled-ann', 'u.json', '--out', str(tmp_path / 'o'))
    assert proc.returncode != 0
    assert missing in proc.stderr and 'not found' in proc.stderr


def test_cli_mask2former_teacher(tmp_path):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules(init_default_scope=False)
    root = tmp_path
    make_data(str(root), num=4)
    base = osp.join(REPO, 'configs/mmcast/_base_')
    cfg_file = root / 'teacher.py'
    cfg_file.write_text(
        f"_base_ = ['{base}/models/mask2former_r18_toy.py',\n"
        f"          '{base}/datasets/toy_cityscapes_instance.py']\n"
        "custom_imports = dict(imports=['mmcast'])\n")
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(cfg_file)).model)
    ckpt = str(root / 'teacher.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = str(root / 'pseudo' / 'u_pl.json')
    proc = _cli(str(cfg_file), ckpt, '--unlabeled-ann', str(root / 'u.json'),
                '--data-root', str(root), '--img-prefix', 'img/', '--out',
                out, '--score-thr', '0.0', '--batch-size', '2',
                '--vis-num', '2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    header = read_header(out)
    assert header['num_images'] == 4 and header['teacher'] == str(cfg_file)
    assert header['filter']['score_thr'] == 0.0
    coco = COCO(out)
    assert len(coco.dataset['annotations']) == header['num_instances'] > 0
    # per image, the teacher's predictions (mmdet's inference_detector: the
    # config's test pipeline, the checkpoint) by the filter's rule: score >
    # 0, at most 100, painted in descending score order, empty ones dropped
    from mmdet.apis import inference_detector, init_detector
    reference = init_detector(str(cfg_file), ckpt, device='cpu')
    for img in coco.dataset['images']:
        pred = inference_detector(
            reference, str(root / 'img' / img['file_name'])).pred_instances
        anns = coco.loadAnns(coco.getAnnIds([img['id']]))
        order = [i for i in pred.scores.argsort(descending=True,
                                                stable=True).tolist()
                 if pred.scores[i] > 0][:100]
        taken = np.zeros((H, W), dtype=bool)
        expected = []
        for i in order:
            mask = pred.masks[i].numpy()
            mask = mask if mask.dtype == bool else mask > 0.5
            if (mask & ~taken).any():
                expected.append((CAT_IDS[pred.labels[i]],
                                 float(pred.scores[i]), mask & ~taken))
            taken |= mask
        assert len(anns) == len(expected), img
        for ann, (cat_id, score, mask) in zip(anns, expected):
            assert ann['category_id'] == cat_id
            assert ann['score'] == pytest.approx(score, abs=1e-5)
            np.testing.assert_array_equal(
                mask_util.decode(ann['segmentation']).astype(bool), mask)
    vis = os.listdir(root / 'pseudo' / 'pseudo_label_vis')
    assert len(vis) == 2 and all(v.endswith('.png') for v in vis)
    assert not [p for p in os.listdir(root / 'pseudo') if '.partial.' in p]

    # the hook with the same teacher config/checkpoint/filter reuses it
    hook = PseudoLabelHook(
        unlabeled_dataset=labeling_cfg(root), teacher_config=str(cfg_file),
        teacher_checkpoint=ckpt, filter_cfg=dict(score_thr=0.0))

    class StubRunner:
        model = torch.nn.Linear(1, 1)

    job = hook.labeling_job(StubRunner(), out)
    assert job.run() == dict(relabeled=False, reason=None,
                             header=job.expected_header())
    assert is_current(out, identity(job.expected_header()))
    assert not is_current(out, identity(job.expected_header(
        PseudoLabelFilter(score_thr=0.3).cfg)))
    assert job.teacher._built is None  # current: never built

    teacher = job.teacher.get()
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(teacher.state_dict()[k], v), k


@pytest.mark.parametrize('score_thr, empty', [(0.95, True), (0.5, False)])
def test_hook_warns_when_the_teacher_keeps_no_instance(tmp_path, score_thr,
                                                       empty):
    """Above every score (FakeTeacher's best is 0.9) no pseudo-label is
    kept: the stage's log says that every unlabeled image will teach the
    student background; with instances kept it says nothing of the kind."""
    from mmengine.logging import MMLogger
    make_data(str(tmp_path), num=3)
    out = str(tmp_path / 'pl.json')
    job = OfflineLabelingJob(
        LabelingTeacher(FakeTeacher()), labeling_cfg(tmp_path), out,
        LabelingSettings(dict(score_thr=score_thr)), name='PseudoLabelHook')
    logger = MMLogger.get_current_instance()
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        assert job.run()['relabeled']
    finally:
        logger.removeHandler(handler)
    count = read_header(out)['num_instances']
    assert (count == 0) == empty
    said = [r.getMessage() for r in records
            if 'kept no instance' in r.getMessage()]
    if empty:
        assert len(said) == 1 and out in said[0]
        assert said[0].startswith('PseudoLabelHook: the teacher kept')
        assert 'on any of the 3 images' in said[0]
    else:
        assert said == []
