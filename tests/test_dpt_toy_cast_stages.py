# Copyright (c) mmcast contributors. All rights reserved.
"""CAST stages 2 and 3 with the toy DINOv3 DPT student, the EoMT student's
twin (the same 4-layer 64-d ViT with a DPT pixel decoder and a Mask2Former
decoder): the distill config (a :class:`CASTDistiller` around a
``CASTMask2Former`` with L_pxl on the ViT's deepest level, the R-18 stage's
data, schedule and offline pseudo-labels) and the finetune config (the
distilled student, labels only, the labels-only twin's model), each trained
for 2 iterations through MMEngine's runner on the generated toy data, and a
step of each under bf16 autocast."""
import copy
import os.path as osp

import pytest
import torch
from conftest import (REPO_ROOT, assert_losses_train,
                      toy_distill_runner_config, toy_runner_config,
                      without_pseudo_label_file)
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.optim import OptimWrapper

import mmcast  # noqa: F401  (registers the modules)

register_all_modules(init_default_scope=True)

TOY = osp.join(REPO_ROOT, 'configs', 'mmcast', 'toy')
CAST = osp.join(REPO_ROOT, 'configs', 'mmcast', 'cast')
DISTILL = osp.join(TOY,
                   'cast-distill_dinov3-tiny-dpt_1xb4-1600it_toy-semi-10p.py')
FINETUNE = osp.join(
    TOY, 'cast-finetune_dinov3-tiny-dpt_1xb4-200it_toy-semi-10p.py')
LABELS_ONLY = osp.join(TOY,
                       'supervised_dinov3-tiny-dpt_1xb4-2000it_toy-10p.py')
R18_DISTILL = osp.join(
    CAST, 'cast-distill_mask2former-r18_1xb4-1600it_toy-semi-10p.py')
R18_FINETUNE = osp.join(
    CAST, 'cast-finetune_mask2former-r18_1xb4-200it_toy-semi-10p.py')
SPLIT = 'annotations/semi/instancesonly_filtered_gtFine_train.1@25'
# L_pxl's parts of the student, which stage 3 and the labels-only twin lack
CAST_PARTS = ('type', 'strong_view', 'panoptic_head')
CAST_HEAD_PARTS = ('type', 'contrast_level', 'projection_head',
                   'loss_pixel_contrast')


def _hooks(cfg: Config) -> dict:
    return {hook.type: hook for hook in cfg.custom_hooks}


def _without_cast(model: dict) -> dict:
    head = {k: v for k, v in model.panoptic_head.items()
            if k not in CAST_HEAD_PARTS}
    return dict({k: v for k, v in model.items() if k not in CAST_PARTS},
                panoptic_head=head)


def test_stages_are_the_r18_recipe_with_the_labels_only_twin():
    """Teacher, data, schedule, pseudo-labelling, strong view and L_pxl are
    the R-18 stages'; the student is the labels-only DPT config's model
    with the contrastive branch on the ViT's deepest level (128 channels),
    which stage 3 switches off."""
    distill, r18 = Config.fromfile(DISTILL), Config.fromfile(R18_DISTILL)
    twin = Config.fromfile(LABELS_ONLY).model
    for key in ('teacher', 'teacher_checkpoint', 'semi_train_cfg'):
        assert distill.model[key] == r18.model[key]
    for key in ('train_cfg', 'param_scheduler', 'optim_wrapper'):
        assert distill[key] == r18[key], key
    assert without_pseudo_label_file(distill.train_dataloader) == \
        without_pseudo_label_file(r18.train_dataloader)
    assert without_pseudo_label_file(distill.custom_hooks) == \
        without_pseudo_label_file(r18.custom_hooks)
    hook = _hooks(distill)['PseudoLabelHook']
    assert hook.out_file == \
        distill.train_dataloader.dataset.datasets[1].ann_file
    assert 'cast-distill_dinov3-tiny-dpt' in hook.out_file
    student, r18_student = distill.model.student, r18.model.student
    assert student.type == 'CASTMask2Former'
    assert student.strong_view == r18_student.strong_view
    head = student.panoptic_head
    assert head.loss_pixel_contrast == \
        r18_student.panoptic_head.loss_pixel_contrast
    assert head.contrast_level == -1
    assert head.projection_head.in_channels == \
        student.backbone.out_channels[-1] == 128
    assert _without_cast(student) == _without_cast(twin)

    finetune, r18 = Config.fromfile(FINETUNE), Config.fromfile(R18_FINETUNE)
    for key in ('train_dataloader', 'train_cfg', 'param_scheduler',
                'optim_wrapper'):
        assert finetune[key] == r18[key], key
    assert finetune.model.panoptic_head.loss_pixel_contrast is None
    assert finetune.model.init_cfg == dict(
        type='Pretrained', prefix='student.',
        checkpoint='work-dir://work_dirs/' +
        osp.splitext(osp.basename(DISTILL))[0])
    assert _without_cast(finetune.model) == dict(
        _without_cast(twin), init_cfg=finetune.model.init_cfg)


def _backbone_grads(model, data_batch: dict) -> tuple:
    """The logged losses of one step of ``model`` on ``data_batch`` and the
    ViT block parameters that got no gradient."""
    model.train()
    model.zero_grad()
    data = model.data_preprocessor(data_batch, True)
    losses = model(**data, mode='loss')
    _, log_vars = model.parse_losses(losses)
    sum(losses[k] for k in losses if 'loss' in k).backward()
    student = getattr(model, 'student', model)
    missed = [name for name, p in student.backbone.named_parameters()
              if '.blocks.' in name and
              (p.grad is None or not bool(p.grad.abs().sum() > 0))]
    return log_vars, missed


@pytest.fixture(scope='module')
def distilled(toy_data_root, tmp_path_factory):
    """The distill stage's runner after 2 iterations and a validation."""
    from mmengine.runner import Runner

    work_dir = str(tmp_path_factory.mktemp('dpt_distill'))
    runner = Runner.from_cfg(
        toy_distill_runner_config(DISTILL, toy_data_root, work_dir, SPLIT))
    runner.train()
    return runner


def test_distill_stage_trains_both_branches(distilled):
    """Both branches' set-prediction losses and L_pxl are logged, the
    temperature is annealed; one more step sends gradients into every ViT
    block and the projection head."""
    runner = distilled
    model = runner.model
    assert type(model.student).__name__ == 'CASTMask2Former'
    assert type(model.student.backbone).__name__ == 'DINOv3MultiLevel'
    logged = set(runner.message_hub.log_scalars)
    for branch in ('sup', 'unsup'):
        for prefix in ('', 'd0.', 'd1.'):
            for name in ('cls', 'mask', 'dice'):
                assert f'train/{branch}_{prefix}loss_{name}' in logged
    assert {'train/loss_pxl', 'train/pxl_margin', 'train/pxl_fnr'} <= logged
    assert any(key.endswith('coco/segm_mAP') for key in logged)
    loss = model.student.panoptic_head.loss_pixel_contrast
    assert loss.temperature < 0.3  # ContrastTemperatureHook ran
    ckpt = torch.load(osp.join(runner.work_dir, 'iter_2.pth'),
                      map_location='cpu', weights_only=True)
    assert all(k.startswith('student.') for k in ckpt['state_dict']
               if k != '_extra_state')

    log_vars, missed = _backbone_grads(model,
                                       next(iter(runner.train_dataloader)))
    assert {k for k in log_vars if not k.startswith(('sup_', 'unsup_'))} \
        == {'loss', 'loss_pxl', 'pxl_margin', 'pxl_fnr'}
    assert_losses_train(log_vars)
    assert missed == []
    assert all(p.grad.abs().sum() > 0
               for p in model.student.panoptic_head.projection_head
               .parameters())


def test_distill_step_under_bf16_autocast(distilled):
    """A training step of the distill model under bf16 autocast (as
    ``AmpOptimWrapper`` runs it on a GPU): finite losses, L_pxl among
    them, and the student's ViT moves."""
    model = copy.deepcopy(distilled.model)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    before = model.student.backbone.state_dict()
    before = {k: v.clone() for k, v in before.items()}
    with torch.autocast('cpu', dtype=torch.bfloat16):
        log_vars = model.train_step(
            next(iter(distilled.train_dataloader)), wrapper)
    assert_losses_train(log_vars)
    assert log_vars['loss_pxl'] > 0
    after = model.student.backbone.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items()
               if '.blocks.' in k)


def test_finetune_stage_starts_from_the_distilled_student(
        distilled, toy_data_root, tmp_path):
    """The student weights of the stage-2 checkpoint (prefix ``student.``)
    but L_pxl's projection head initialise stage 3, which trains on the
    labeled split with L_sup only, also under bf16 autocast."""
    from mmengine.runner import Runner

    ckpt = osp.join(distilled.work_dir, 'iter_2.pth')
    work_dir = str(tmp_path)
    cfg = toy_runner_config(
        FINETUNE, toy_data_root, work_dir, 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'param_scheduler.end=2',
        f'train_dataloader.dataset.ann_file={SPLIT}.json',
        f'model.init_cfg.checkpoint={ckpt}')
    runner = Runner.from_cfg(cfg)
    model = runner.model
    model.init_weights()
    distilled_state = distilled.model.student.state_dict()
    start = copy.deepcopy(model.state_dict())
    assert set(start) == {k for k in distilled_state
                          if 'projection_head.' not in k}
    assert all(torch.equal(v, distilled_state[k]) for k, v in start.items())

    runner.train()
    moved = [k for k, v in model.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, start[k])]
    assert any('.blocks.0.' in k for k in moved)
    batch = next(iter(runner.train_dataloader))
    log_vars, missed = _backbone_grads(model, batch)
    assert set(log_vars) == {'loss'} | {
        f'{prefix}loss_{name}' for prefix in ('', 'd0.', 'd1.')
        for name in ('cls', 'mask', 'dice')}
    assert_losses_train(log_vars)
    assert missed == []
    # and a step under bf16 autocast, as AmpOptimWrapper runs it on a GPU
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert_losses_train(model.train_step(batch, wrapper))
