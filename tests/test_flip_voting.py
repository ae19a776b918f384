# Copyright (c) mmcast contributors. All rights reserved.
"""Mirror voting for the offline pseudo-labels: ``fuse_instances``'
``score_agg='vote'``, :class:`FlipVotingTTA` with a real Mask2Former in
the labeler, and the hook's ``test_time_flip``."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from mmdet.structures.mask import mask2bbox
from mmengine.structures import InstanceData

import mmcast  # noqa: F401
from mmcast.engine.hooks.pseudo_label_hook import PseudoLabelHook
from mmcast.models.teachers import (FlipVotingTTA, fuse_instances,
                                    mirror_instances)
from mmcast.pseudo_labels import (build_labeling_dataset, identity,
                                  label_unlabeled_set)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLASSES = ('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
           'bicycle')
CAT_IDS = [24, 25, 26, 27, 28, 31, 32, 33]
H, W = 40, 64  # the test pipeline's scale: Resize keeps the pixels


def _inst(masks, labels, scores) -> InstanceData:
    masks = torch.as_tensor(np.array(masks), dtype=torch.bool)
    return InstanceData(masks=masks, bboxes=mask2bbox(masks).float(),
                        labels=torch.tensor(labels),
                        scores=torch.tensor(scores))


def _box(x0, x1, y0=2, y1=8, h=10, w=20) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def test_vote_averages_over_views_and_halves_what_one_view_sees():
    view_a = _inst([_box(2, 8), _box(2, 7), _box(12, 18)], [0, 0, 1],
                   [0.8, 0.5, 0.9])
    view_b = _inst([_box(3, 8)], [0], [0.6])
    fused = fuse_instances([view_a, view_b], type='weighted', iou_thr=0.5,
                           score_agg='vote')
    by_label = {int(label): float(score)
                for label, score in zip(fused.labels, fused.scores)}
    # label 0: both views (view a's best 0.8, its own duplicate 0.5 is no
    # second vote; view b 0.6); label 1: view a only
    assert by_label == pytest.approx({0: 0.7, 1: 0.45})
    assert len(fused) == 2
    # 'mean' would count view a's duplicate and keep the lone one whole
    mean = fuse_instances([view_a, view_b], type='weighted', iou_thr=0.5)
    assert sorted(mean.scores.tolist()) == pytest.approx(
        sorted([(0.8 + 0.5 + 0.6) / 3, 0.9]))
    with pytest.raises(ValueError, match="score_agg must be one of"):
        fuse_instances([view_a], score_agg='sum')


def test_mirror_instances_flips_masks_and_boxes_alike():
    inst = _inst([_box(2, 8), _box(11, 20, 0, 10)], [0, 3], [0.9, 0.4])
    mirrored = mirror_instances(inst, width=20)
    assert torch.equal(mirrored.masks, inst.masks.flip(-1))
    assert torch.equal(mirrored.bboxes, mask2bbox(mirrored.masks).float())
    back = mirror_instances(mirrored, width=20)
    assert torch.equal(back.masks, inst.masks)
    assert torch.equal(back.bboxes, inst.bboxes)
    assert torch.equal(back.labels, inst.labels)


def test_float_masks_without_boxes_are_made_fusable():
    """A teacher with float masks and no boxes: binarised like the
    pseudo-label filter (> 0.5) and boxed from the masks."""
    from mmcast.models.teachers.flip_voting import binary_with_boxes
    masks = torch.zeros(2, 10, 20)
    masks[0, 2:8, 2:8] = 0.8
    masks[0, 2:8, 8:10] = 0.4
    masks[1, 0:3, 10:20] = 1.0
    inst = InstanceData(masks=masks, labels=torch.tensor([0, 1]),
                        scores=torch.tensor([0.9, 0.5]))
    out = binary_with_boxes(inst)
    assert out.masks.dtype == torch.bool
    assert torch.equal(out.masks[0], torch.from_numpy(_box(2, 8)))
    assert out.bboxes.tolist() == [[2, 2, 8, 8], [10, 0, 20, 3]]
    fused = fuse_instances([out, mirror_instances(out, 20)],
                           type='weighted', score_agg='vote')
    assert len(fused) == 4  # no box is its own mirror image here


def _images(root: str, mirrored: bool) -> str:
    """Four textured images (or their mirror images) and their json."""
    folder = osp.join(root, 'img')
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(0)
    images = []
    for i in range(4):
        img = rng.randint(0, 255, (H, W, 3)).astype(np.uint8)
        cv2.rectangle(img, (4 + 3 * i, 5), (30 + 4 * i, 30), (30, 200, 60),
                      -1)
        name = f'{"m" if mirrored else "p"}{i}_leftImg8bit.png'
        cv2.imwrite(osp.join(folder, name), img[:, ::-1] if mirrored else img)
        images.append(dict(id=i, file_name=name, height=H, width=W))
    path = osp.join(root, f'{"m" if mirrored else "p"}.json')
    with open(path, 'w') as f:
        json.dump(dict(images=images, annotations=[],
                       categories=[dict(id=c, name=n)
                                   for c, n in zip(CAT_IDS, CLASSES)]), f)
    return osp.basename(path)


def _labels(out: str) -> dict:
    """Per image id: ``[(category, score, mask)]`` by decreasing score."""
    with open(out) as f:
        coco = json.load(f)
    per_image = {img['id']: [] for img in coco['images']}
    for ann in coco['annotations']:
        per_image[ann['image_id']].append(
            (ann['category_id'], ann['score'],
             mask_util.decode(ann['segmentation']).astype(bool)))
    return {k: sorted(v, key=lambda a: -a[1]) for k, v in per_image.items()}


def test_flip_voting_labels_are_mirror_equivariant(tmp_path):
    """Labelling the mirror images with mirror voting gives the mirror of
    the labels of the images (the two views swap roles); with the views
    flipped back wrongly, or not fused, it would not."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/mmcast/_base_/models/mask2former_r18_toy.py'))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        teacher = MODELS.build(cfg.model).eval()
        teacher.dataset_meta = dict(classes=CLASSES)
        outputs = {}
        for mirrored in (False, True):
            dataset = build_labeling_dataset(dict(
                type='CityscapesDataset', data_root=str(tmp_path),
                ann_file=_images(str(tmp_path), mirrored),
                data_prefix=dict(img='img/'),
                pipeline=[
                    dict(type='LoadImageFromFile'),
                    dict(type='Resize', scale=(W, H), keep_ratio=True),
                    dict(type='PackDetInputs',
                         meta_keys=('img_id', 'img_path', 'ori_shape',
                                    'img_shape', 'scale_factor'))
                ]))
            for name, model in (('plain', teacher),
                                ('tta', FlipVotingTTA(teacher))):
                out = str(tmp_path / f'{name}_{mirrored}.json')
                label_unlabeled_set(model, dataset, out,
                                    filter_cfg=dict(score_thr=0.0),
                                    progress=False)
                outputs[name, mirrored] = _labels(out)
    tta, tta_m = outputs['tta', False], outputs['tta', True]
    assert sum(len(v) for v in tta.values()) > 0
    for img_id, anns in tta.items():
        assert len(anns) == len(tta_m[img_id])
        for (cat, score, mask), (cat_m, score_m, mask_m) in zip(
                anns, tta_m[img_id]):
            assert cat == cat_m and score == pytest.approx(score_m, abs=1e-6)
            np.testing.assert_array_equal(mask, mask_m[:, ::-1])
    # the teacher alone is not mirror-equivariant: the votes changed labels
    plain = outputs['plain', False]
    assert any([a[1] for a in plain[i]] != [a[1] for a in tta[i]]
               for i in plain)


def test_hook_test_time_flip_is_part_of_the_labels_identity(tmp_path):
    checkpoint = tmp_path / 'teacher.pth'
    checkpoint.write_bytes(b'weights')
    (tmp_path / 'img').mkdir()
    (tmp_path / 'u.json').write_text(json.dumps(dict(
        images=[], annotations=[],
        categories=[dict(id=c, name=n) for c, n in zip(CAT_IDS, CLASSES)])))
    cfg = dict(type='CityscapesDataset', data_root=str(tmp_path),
               ann_file='u.json', data_prefix=dict(img='img/'),
               pipeline=[dict(type='LoadImageFromFile')])
    from mmengine.registry import DefaultScope

    class StubRunner:
        model = torch.nn.Linear(1, 1)

    def header(flip: bool) -> dict:
        hook = PseudoLabelHook(unlabeled_dataset=cfg,
                               teacher_config='teacher.py',
                               teacher_checkpoint=str(checkpoint),
                               test_time_flip=flip)
        with DefaultScope.overwrite_default_scope('mmdet'):
            job = hook.labeling_job(StubRunner(), str(tmp_path / 'pl.json'))
        return job.expected_header()

    headers = [header(False), header(True)]
    assert identity(headers[0]) != identity(headers[1])
    assert headers[1]['teacher'] == 'teacher.py + flip voting'


def test_cli_flip_tta_relabels_and_records_it(tmp_path):
    """``tools/pseudo_label.py --flip-tta``: a file made without it is not
    current with it; the header says so, and a second run with it resumes
    nothing to do."""
    import subprocess
    import sys

    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    from mmcast.pseudo_labels import read_header

    register_all_modules(init_default_scope=False)
    base = osp.join(REPO, 'configs/mmcast/_base_')
    cfg_file = tmp_path / 'teacher.py'
    cfg_file.write_text(
        f"_base_ = ['{base}/models/mask2former_r18_toy.py',\n"
        f"          '{base}/datasets/toy_cityscapes_instance.py']\n"
        "custom_imports = dict(imports=['mmcast'])\n")
    from mmengine.registry import DefaultScope
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(Config.fromfile(str(cfg_file)).model)
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    ann = _images(str(tmp_path), mirrored=False)
    out = str(tmp_path / 'pl.json')

    def cli(*extra):
        proc = subprocess.run(
            [sys.executable, osp.join(REPO, 'tools', 'pseudo_label.py'),
             str(cfg_file), ckpt, '--unlabeled-ann', ann, '--data-root',
             str(tmp_path), '--img-prefix', 'img/', '--out', out,
             '--score-thr', '0.0', '--vis-num', '0', *extra],
            cwd=REPO, capture_output=True, text=True,
            env=dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='2'))
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    cli()
    assert read_header(out)['teacher'] == str(cfg_file)
    assert 'was made by another teacher' in cli('--flip-tta')
    assert read_header(out)['teacher'] == f'{cfg_file} + flip voting'
    assert f'{out} is current' in cli('--flip-tta')
