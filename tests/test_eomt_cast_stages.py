# Copyright (c) mmcast contributors. All rights reserved.
"""CAST stages 2 and 3 with the toy EoMT student: the distill config (a
:class:`CASTDistiller` around :class:`EoMTStudent` with L_pxl on its patch
tokens, the R-18 stage's data, schedule and offline pseudo-labels) and the
finetune config (the distilled student, labels only), each trained for 2
iterations through MMEngine's runner on the generated toy data."""
import copy
import os.path as osp

import pytest
import torch
from conftest import (REPO_ROOT, assert_losses_train,
                      toy_distill_runner_config, toy_runner_config,
                      without_pseudo_label_file)
from mmdet.utils import register_all_modules
from mmengine.config import Config

import mmcast  # noqa: F401  (registers the modules)

register_all_modules(init_default_scope=True)

TOY = osp.join(REPO_ROOT, 'configs', 'mmcast', 'toy')
CAST = osp.join(REPO_ROOT, 'configs', 'mmcast', 'cast')
DISTILL = osp.join(TOY,
                   'cast-distill_eomt-dinov3-tiny_1xb4-1600it_toy-semi-10p.py')
FINETUNE = osp.join(
    TOY, 'cast-finetune_eomt-dinov3-tiny_1xb4-200it_toy-semi-10p.py')
R18_DISTILL = osp.join(
    CAST, 'cast-distill_mask2former-r18_1xb4-1600it_toy-semi-10p.py')
R18_FINETUNE = osp.join(
    CAST, 'cast-finetune_mask2former-r18_1xb4-200it_toy-semi-10p.py')
SPLIT = 'annotations/semi/instancesonly_filtered_gtFine_train.1@25'
# the toy runs' annealing: block 0 over iteration 0, block 1 over 1
ANNEALING = dict(type='MaskAnnealingHook', start_iters=[0, 1],
                 end_iters=[1, 2])


def _hooks(cfg: Config) -> dict:
    return {hook.type: hook for hook in cfg.custom_hooks}


def test_stages_keep_the_r18_recipe_and_scale_the_annealing():
    """Data, schedule and pseudo-labelling are the R-18 stages' (each
    stage with its own pseudo-label file); the annealing windows are the
    supervised toy EoMT's at 1/4-3/4 of each stage's iterations."""
    distill, r18 = Config.fromfile(DISTILL), Config.fromfile(R18_DISTILL)
    assert distill.model.type == 'CASTDistiller'
    assert distill.model.student.type == 'EoMTStudent'
    for key in ('teacher', 'teacher_checkpoint', 'semi_train_cfg'):
        assert distill.model[key] == r18.model[key]
    for key in ('train_cfg', 'param_scheduler', 'optim_wrapper'):
        assert distill[key] == r18[key], key
    assert without_pseudo_label_file(distill.train_dataloader) == \
        without_pseudo_label_file(r18.train_dataloader)
    hooks, r18_hooks = _hooks(distill), _hooks(r18)
    assert set(hooks) == set(r18_hooks) | {'MaskAnnealingHook'}
    for name in r18_hooks:
        assert without_pseudo_label_file(hooks[name]) == \
            without_pseudo_label_file(r18_hooks[name])
    r18_student = r18.model.student
    for key in ('strong_view', 'loss_pixel_contrast'):
        assert distill.model.student[key] == (
            r18_student.get(key) or r18_student.panoptic_head[key])
    assert hooks['PseudoLabelHook'].out_file == \
        distill.train_dataloader.dataset.datasets[1].ann_file
    assert 'cast-distill_eomt' in hooks['PseudoLabelHook'].out_file

    finetune, r18 = Config.fromfile(FINETUNE), Config.fromfile(R18_FINETUNE)
    assert finetune.model.type == 'EoMTStudent'
    assert 'loss_pixel_contrast' not in finetune.model  # L_sup only
    for key in ('train_dataloader', 'train_cfg', 'param_scheduler',
                'optim_wrapper'):
        assert finetune[key] == r18[key], key
    assert finetune.model.init_cfg == dict(
        type='Pretrained', prefix='student.',
        checkpoint='work-dir://work_dirs/' +
        osp.splitext(osp.basename(DISTILL))[0])

    for cfg in (distill, finetune):
        quarter = cfg.train_cfg.max_iters // 4
        hook = _hooks(cfg)['MaskAnnealingHook']
        assert hook.start_iters == [quarter, 2 * quarter]
        assert hook.end_iters == [2 * quarter, 3 * quarter]


def _distill_runner_config(data_root: str, work_dir: str) -> Config:
    """The distill config on the toy data, CPU-sized, for 2 iterations,
    with the annealing of the toy runs."""
    cfg = toy_distill_runner_config(DISTILL, data_root, work_dir, SPLIT)
    cfg.custom_hooks = [ANNEALING]
    return cfg


def _vit_grads(model, data_batch: dict) -> dict:
    """The logged losses of one step of ``model`` on ``data_batch`` and
    whether each of its ViT's parameters got a nonzero gradient."""
    model.train()
    model.zero_grad()
    data = model.data_preprocessor(data_batch, True)
    losses = model(**data, mode='loss')
    _, log_vars = model.parse_losses(losses)
    sum(losses[k] for k in losses if 'loss' in k).backward()
    student = getattr(model, 'student', model)
    return log_vars, {
        name: p.grad is not None and bool(p.grad.abs().sum() > 0)
        for name, p in student.vit.named_parameters()}


@pytest.fixture(scope='module')
def distilled(toy_data_root, tmp_path_factory):
    """The distill stage's runner after 2 iterations and a validation."""
    from mmengine.runner import Runner

    work_dir = str(tmp_path_factory.mktemp('eomt_distill'))
    runner = Runner.from_cfg(_distill_runner_config(toy_data_root, work_dir))
    runner.train()
    return runner


def test_distill_stage_trains_both_branches(distilled):
    """Both branches' set-prediction losses of every supervised block and
    L_pxl over both are logged; one more step sends gradients into the
    whole ViT and the projection head."""
    runner = distilled
    model = runner.model
    assert type(model.student).__name__ == 'EoMTStudent'
    assert model.student.attn_mask_probs == [0.0, 1.0]
    logged = set(runner.message_hub.log_scalars)
    for branch in ('sup', 'unsup'):
        for prefix in ('', 'd0.', 'd1.'):
            for name in ('cls', 'mask', 'dice'):
                assert f'train/{branch}_{prefix}loss_{name}' in logged
    assert {'train/loss_pxl', 'train/pxl_margin', 'train/pxl_fnr'} <= logged
    assert any(key.endswith('coco/segm_mAP') for key in logged)
    ckpt = torch.load(osp.join(runner.work_dir, 'iter_2.pth'),
                      map_location='cpu', weights_only=True)
    assert all(k.startswith('student.') for k in ckpt['state_dict']
               if k != '_extra_state')

    log_vars, grads = _vit_grads(model, next(iter(runner.train_dataloader)))
    assert {k.split('_')[0] for k in log_vars} == {'sup', 'unsup', 'loss',
                                                  'pxl'}
    assert {k for k in log_vars if not k.startswith(('sup_', 'unsup_'))} \
        == {'loss', 'loss_pxl', 'pxl_margin', 'pxl_fnr'}
    assert_losses_train(log_vars)
    assert [n for n, reached in grads.items() if not reached] == []
    assert all(p.grad.abs().sum() > 0
               for p in model.student.projection_head.parameters())


def test_finetune_stage_starts_from_the_distilled_student(
        distilled, toy_data_root, tmp_path):
    """The student weights of the stage-2 checkpoint (prefix ``student.``)
    but L_pxl's projection head initialise stage 3, which trains on the
    labeled split only."""
    from mmengine.runner import Runner

    ckpt = osp.join(distilled.work_dir, 'iter_2.pth')
    work_dir = str(tmp_path)
    cfg = toy_runner_config(
        FINETUNE, toy_data_root, work_dir, 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'param_scheduler.end=2',
        f'train_dataloader.dataset.ann_file={SPLIT}.json',
        f'model.init_cfg.checkpoint={ckpt}')
    cfg.custom_hooks = [ANNEALING]
    runner = Runner.from_cfg(cfg)
    model = runner.model
    assert type(model).__name__ == 'EoMTStudent'
    model.init_weights()
    distilled_state = distilled.model.student.state_dict()
    start = copy.deepcopy(model.state_dict())
    assert set(start) == {k for k in distilled_state
                          if not k.startswith('projection_head.')}
    assert all(torch.equal(v, distilled_state[k]) for k, v in start.items())

    runner.train()
    assert model.attn_mask_probs == [0.0, 1.0]
    moved = [k for k, v in model.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, start[k])]
    assert 'vit.blocks.0.attn.qkv.weight' in moved
    log_vars, grads = _vit_grads(model, next(iter(runner.train_dataloader)))
    assert set(log_vars) == {'loss'} | {
        f'{prefix}loss_{name}' for prefix in ('', 'd0.', 'd1.')
        for name in ('cls', 'mask', 'dice')}
    assert_losses_train(log_vars)
    assert [n for n, reached in grads.items() if not reached] == []
