# Copyright (c) mmcast contributors. All rights reserved.
"""SAM 2 of the box-prompted teacher trained on ground-truth boxes.

The toy's tiny SAM 2 starts from random weights; the teacher's pre-training
on the source corpus trains it class-agnostically (``sam2_trainable``,
``SAM2BoxPromptLoss``), and the adaptation stages keep it frozen, as the
paper keeps the released SAM 2.1. The pipeline test checks the same on the
checkpoints of a whole toy run (``tests/test_cast_pipeline.py``).
"""
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

import mmcast  # noqa: F401  (registers the teachers)
from mmcast.models.teachers import SAM2BoxPromptLoss
from mmcast.models.teachers.sam2_prompting import SAM2_IMAGE_PARTS
from mmcast.toy.tiny_teachers import (build_tiny_teacher_assets,
                                      tiny_box_prompted_teacher_cfg)

register_all_modules(init_default_scope=False)

H, W = 64, 128
# (x0, y0, x1, y1) of a red box and a blue disc
BOX = (10, 12, 50, 52)
DISC = (70, 8, 118, 56)
PRETRAIN = ('configs/mmcast/toy/'
            'teacher_gdino-tiny_sam2-tiny_source-pretrain_toy.py')
ADAPT = ('configs/mmcast/cast/'
         'cast-adapt-teacher_gdino-tiny_sam2-tiny_1xb4-300it_toy-semi-10p.py')
SELFTRAIN = ('configs/mmcast/cast/cast-adapt-teacher-selftrain_gdino-tiny_'
             'sam2-tiny_1xb4-500it_toy-semi-10p.py')
DISTILL = ('configs/mmcast/cast/cast-distill_mask2former-r18_gdino-tiny-'
           'sam2-tiny-teacher_1xb4-1600it_toy-semi-10p.py')


@pytest.fixture(scope='module', autouse=True)
def _mmdet_scope():
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.fixture(scope='module')
def assets(tmp_path_factory):
    return build_tiny_teacher_assets(str(tmp_path_factory.mktemp('tiny')))


@pytest.fixture(scope='module')
def scene():
    """An RGB uint8 image (H, W, 3) and its two instances: boxes (2, 4)
    and masks (2, H, W) bool."""
    rng = np.random.RandomState(0)
    img = np.full((H, W, 3), 110, np.uint8)
    img += rng.randint(0, 25, img.shape).astype(np.uint8)
    masks = np.zeros((2, H, W), bool)
    masks[0, BOX[1]:BOX[3], BOX[0]:BOX[2]] = True
    yy, xx = np.mgrid[:H, :W]
    cx, cy = (DISC[0] + DISC[2]) / 2, (DISC[1] + DISC[3]) / 2
    masks[1] = (xx - cx)**2 + (yy - cy)**2 < ((DISC[2] - DISC[0]) / 2)**2
    img[masks[0]] = (200, 40, 40)
    img[masks[1]] = (40, 60, 210)
    boxes = torch.tensor([BOX, DISC], dtype=torch.float)
    return img, boxes, torch.from_numpy(masks)


def build(assets, **kwargs):
    """The teacher as a runner has it: built, then ``init_weights`` (the
    random Grounding-DINO's ``level_embed`` is uninitialised memory before)."""
    torch.manual_seed(0)
    teacher = MODELS.build(
        tiny_box_prompted_teacher_cfg(assets['root'], **kwargs))
    teacher.init_weights()
    return teacher


def training_batch(teacher, scene):
    """The scene as the detector's preprocessed training batch."""
    img, boxes, masks = scene
    sample = DetDataSample(metainfo=dict(
        img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W),
        scale_factor=(1., 1.)))
    sample.gt_instances = InstanceData(
        bboxes=boxes, labels=torch.tensor([2, 0]),
        masks=BitmapMasks(masks.numpy().astype(np.uint8), H, W))
    bgr = torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1)
    data = teacher.data_preprocessor(
        dict(inputs=[bgr], data_samples=[sample]), True)
    return data['inputs'], data['data_samples']


def mask_ious(teacher, scene):
    """IoU of the teacher's SAM 2 mask from each exact box, inference path."""
    img, boxes, masks = scene
    (pred, ) = teacher.segment_boxes(
        teacher.embed_images([img]), [(H, W)], [boxes])
    inter = (pred & masks).flatten(1).sum(1).float()
    union = (pred | masks).flatten(1).sum(1).float()
    return inter / union


def test_sam2_is_frozen_by_default_and_trains_the_parts_named(assets):
    frozen = build(assets)
    assert frozen.sam2_loss is None
    assert not any(p.requires_grad for p in frozen.sam2_model.parameters())
    teacher = build(assets, sam2_trainable=('sam_mask_decoder', ))
    for name, p in teacher.sam2_model.named_parameters():
        assert p.requires_grad == name.startswith('sam_mask_decoder.'), name
    with pytest.raises(ValueError, match="unknown SAM 2 parts.*'memory_en"):
        build(assets, sam2_trainable=('memory_encoder', ))
    with pytest.raises(ValueError, match='sam2_loss is given but SAM 2 is'):
        build(assets, sam2_loss=dict(box_noise=0.))
    with pytest.raises(ValueError, match="unknown SAM 2 losses.*loss_cls"):
        build(assets, sam2_trainable=SAM2_IMAGE_PARTS,
              sam2_loss=dict(losses=dict(loss_cls=dict(type='L1Loss'))))


def test_loss_adds_sam2_losses_with_gradients_into_its_parts(assets, scene):
    teacher = build(assets, sam2_trainable=SAM2_IMAGE_PARTS)
    teacher.train()
    assert not teacher.sam2_model.training
    losses = teacher.loss(*training_batch(teacher, scene))
    for key in ('loss_sam2_mask', 'loss_sam2_dice', 'loss_sam2_iou',
                'loss_cls'):
        assert torch.isfinite(losses[key]) and losses[key] > 0, key
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for part in SAM2_IMAGE_PARTS:
        grads = [p.grad for p in getattr(teacher.sam2_model,
                                         part).parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), part
    for name, p in teacher.sam2_model.named_parameters():
        if not name.startswith(SAM2_IMAGE_PARTS):
            assert p.grad is None and not p.requires_grad, name


def test_box_prompt_loss_teaches_the_random_sam2_the_masks(assets, scene):
    """A few dozen steps on one image: the masks SAM 2 makes from the exact
    boxes (predict's path) go from random to the objects'."""
    torch.manual_seed(0)
    teacher = build(assets, sam2_trainable=SAM2_IMAGE_PARTS)
    before = mask_ious(teacher, scene)
    assert (before < 0.5).all(), before
    img, boxes, masks = scene
    image = torch.from_numpy(img).permute(2, 0, 1).float()
    params = [p for p in teacher.sam2_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=5e-4)
    for _ in range(40):
        losses = teacher.sam2_loss(teacher.sam2_model, [image], [boxes],
                                   [masks])
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    after = mask_ious(teacher, scene)
    assert (after > 0.8).all(), (before, after)


def test_box_jitter_stays_near_the_box_and_in_the_image():
    loss = SAM2BoxPromptLoss(box_noise=0.1)
    boxes = torch.tensor([[10., 10., 50., 30.], [0., 0., 128., 64.]])
    torch.manual_seed(0)
    jittered = torch.stack([loss.jitter(boxes, H, W) for _ in range(200)])
    side = torch.tensor([40., 20., 40., 20.])
    assert ((jittered[:, 0] - boxes[0]).abs() <= 0.2 * side + 1e-4).all()
    assert (jittered[:, 0] != boxes[0]).any(dim=1).all()
    xs, ys = jittered[..., 0::2], jittered[..., 1::2]
    assert (xs >= 0).all() and (xs <= W).all()
    assert (ys >= 0).all() and (ys <= H).all()
    assert torch.equal(SAM2BoxPromptLoss(box_noise=0.).jitter(boxes, H, W),
                       boxes)


def _sam2_lrs(model, optim_cfg) -> dict:
    """The learning rate of each SAM 2 parameter the optimiser updates."""
    optim = build_optim_wrapper(model, optim_cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(p)]: group['lr']
        for group in optim.optimizer.param_groups for p in group['params']
        if 'sam2_model.' in names[id(p)] and p.requires_grad
    }


def test_pretraining_trains_sam2_and_the_adaptation_stages_do_not(
        repo_root, assets, monkeypatch):
    """θ_T^0's config trains SAM 2's image parts; stages 1a and 1b train
    the Grounding-DINO only, and stage 2's teacher is stage 1a's model."""
    monkeypatch.setenv('MMCAST_TINY_TEACHERS', assets['root'])
    pretrain = Config.fromfile(osp.join(repo_root, PRETRAIN))
    model = MODELS.build(pretrain.model)
    lrs = _sam2_lrs(model, pretrain.optim_wrapper)
    for part in SAM2_IMAGE_PARTS:
        assert any(n.startswith(f'sam2_model.{part}.') and lr > 0
                   for n, lr in lrs.items()), part
    adapt = Config.fromfile(osp.join(repo_root, ADAPT))
    model = MODELS.build(adapt.model)
    assert _sam2_lrs(model, adapt.optim_wrapper) == {}
    selftrain = Config.fromfile(osp.join(repo_root, SELFTRAIN))
    assert not selftrain.model.student.get('sam2_trainable')
    assert 'sam2_loss' not in selftrain.model.student
    distill = Config.fromfile(osp.join(repo_root, DISTILL))
    assert osp.normpath(distill.model.teacher) == osp.normpath(ADAPT)
