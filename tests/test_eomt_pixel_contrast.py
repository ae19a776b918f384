# Copyright (c) mmcast contributors. All rights reserved.
"""CAST's pixel-wise contrastive loss L_pxl on the EoMT student's patch
tokens: EoMTStudent's optional contrastive branch, its ``loss_branches``
(one forward over all branches) and CASTDistiller running it."""
import os.path as osp

import torch
from conftest import REPO_ROOT, assert_losses_train
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config

import mmcast  # noqa: F401  (registers the modules)
from mmcast.models.layers import PhotometricStrongView

register_all_modules(init_default_scope=True)

TOY_CONFIG = osp.join(REPO_ROOT, 'configs', 'mmcast', 'toy',
                      'supervised_eomt-dinov3-tiny_1xb4-2000it_toy-10p.py')
# the toy R-18 CAST student's L_pxl (cast_mask2former_r18_toy.py)
LOSS_PXL = dict(type='InstanceAwarePixelContrastLoss', sampler='fused',
                num_negatives=200, cross_image=True, temperature=0.3,
                neg_margin=0.5, loss_weight=0.1)
SET_LOSSES = {f'{prefix}loss_{name}' for prefix in ('', 'd0.', 'd1.')
              for name in ('cls', 'mask', 'dice')}
PXL_KEYS = {'loss_pxl', 'pxl_margin', 'pxl_fnr'}


def _student_cfg(**kwargs) -> Config:
    cfg = Config.fromfile(TOY_CONFIG).model
    cfg.update(kwargs)
    return cfg


def _build(cfg):
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.train()


def _packed(shapes, num_items, seed=0):
    torch.manual_seed(seed)
    return demo_mm_inputs(
        batch_size=len(shapes), image_shapes=[list(s) for s in shapes],
        num_items=list(num_items), num_classes=8, with_mask=True)


def _count_patch_embeds(vit) -> list:
    """The batch size of each call of the ViT's patch embedding."""
    calls = []
    vit.patch_embed.register_forward_hook(
        lambda module, args, out: calls.append(args[0].shape[0]))
    return calls


def _reached(module) -> list:
    """Names of the parameters of ``module`` without a nonzero gradient."""
    return [n for n, p in module.named_parameters()
            if p.grad is None or not p.grad.abs().sum() > 0]


def test_without_the_loss_no_contrastive_branch_is_built():
    model = _build(_student_cfg(
        strong_view=dict(type='PhotometricStrongView'),
        projection_head=dict(type='PixelProjectionHead')))
    assert not model.with_pixel_contrast
    assert not any(isinstance(m, PhotometricStrongView)
                   for m in model.modules())
    assert not hasattr(model, 'projection_head')
    off = _build(_student_cfg(
        loss_pixel_contrast=dict(LOSS_PXL, loss_weight=0.0)))
    assert not off.with_pixel_contrast
    data = model.data_preprocessor(_packed(((3, 64, 128), ) * 2, (3, 2)),
                                   True)
    assert set(model(**data, mode='loss')) == SET_LOSSES


def test_pixel_contrast_on_the_patch_tokens():
    """loss_pxl and its monitors beside every set-prediction loss; the
    weak view's patch tokens carry gradient into the projection head and
    the whole ViT; the strong view goes through the ViT once more (same
    batch), without gradient."""
    model = _build(_student_cfg(loss_pixel_contrast=LOSS_PXL))
    assert model.projection_head.mlp[0].in_channels == 64
    calls = _count_patch_embeds(model.vit)
    data = model.data_preprocessor(_packed(((3, 64, 128), ) * 2, (3, 2)),
                                   True)
    losses = model(**data, mode='loss')
    assert set(losses) == SET_LOSSES | PXL_KEYS
    assert calls == [2, 2]
    assert losses['loss_pxl'].requires_grad and losses['loss_pxl'] > 0
    assert not losses['pxl_margin'].requires_grad
    assert 0 <= float(losses['pxl_fnr']) <= 1
    _, log_vars = model.parse_losses(losses)
    assert_losses_train(log_vars)

    losses['loss_pxl'].backward()
    assert _reached(model.projection_head) == []
    assert model.vit.patch_embed.proj.weight.grad.abs().sum() > 0
    assert _reached(model.vit.blocks) == []
    # L_pxl reads the patch tokens only: the queries' heads get none of it
    assert model.class_head.weight.grad is None


def test_loss_branches_is_one_forward_over_all_branches():
    """Set-prediction losses per branch, L_pxl once over the whole batch;
    a branch padded smaller is padded to the other's shape first."""
    model = _build(_student_cfg(loss_pixel_contrast=LOSS_PXL))
    calls = _count_patch_embeds(model.vit)
    sup = model.data_preprocessor(
        _packed(((3, 64, 128), (3, 50, 120)), (3, 2)), True)
    unsup = model.data_preprocessor(
        _packed(((3, 48, 96), ) * 3, (2, 1, 2), seed=1), True)
    assert sup['inputs'].shape[-2:] == (64, 128)
    assert unsup['inputs'].shape[-2:] == (48, 96)
    branch_losses, contrast_losses = model.loss_branches(
        dict(sup=sup['inputs'], unsup=unsup['inputs']),
        dict(sup=sup['data_samples'], unsup=unsup['data_samples']))
    assert calls == [5, 5]
    assert set(branch_losses) == {'sup', 'unsup'}
    assert all(set(v) == SET_LOSSES for v in branch_losses.values())
    assert set(contrast_losses) == PXL_KEYS
    for sample in unsup['data_samples']:
        assert sample.batch_input_shape == (64, 128)
        assert sample.gt_instances.masks.masks.shape[-2:] == (64, 128)


def test_distiller_runs_the_students_own_loss_branches():
    """CASTDistiller finds ``loss_branches`` on an EoMT student (no
    ``panoptic_head``): one forward for both branches, ``sup_*`` and
    ``unsup_*`` (× λ_semi) losses and one ``loss_pxl``, gradients into the
    projection head and the ViT; the strong view's draws are in its
    ``state_dict``."""
    student = _student_cfg(loss_pixel_contrast=LOSS_PXL)
    model = _build(dict(
        type='CASTDistiller', student=student,
        semi_train_cfg=dict(unsup_weight=0.5),
        data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                               data_preprocessor=student.data_preprocessor)))
    calls = _count_patch_embeds(model.student.vit)
    preprocess = model.student.data_preprocessor
    sup = preprocess(_packed(((3, 64, 128), ) * 2, (3, 2)), True)
    unsup = preprocess(_packed(((3, 64, 128), ) * 2, (2, 2), seed=1), True)
    losses = model.loss(
        dict(sup=sup['inputs'], unsup=unsup['inputs']),
        dict(sup=sup['data_samples'], unsup=unsup['data_samples']))
    assert calls == [4, 4]
    assert set(losses) == PXL_KEYS | {
        f'{branch}_{key}' for branch in ('sup', 'unsup')
        for key in SET_LOSSES}
    _, log_vars = model.parse_losses(losses)
    assert_losses_train(log_vars)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert _reached(model.student.projection_head) == []
    assert _reached(model.student.vit.blocks) == []
    assert int(model.state_dict()['_extra_state'][0]) == 1


def test_the_shipped_eomt_distill_config_steps_under_autocast():
    """The stage-2 config with the EoMT student (L_pxl on) trains a step
    under CPU bf16 autocast: finite losses, gradients into the ViT."""
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'mmcast', 'toy',
        'cast-distill_eomt-dinov3-tiny_1xb4-1600it_toy-semi-10p.py')).model
    cfg.teacher = cfg.teacher_checkpoint = None  # offline pseudo-labels
    model = _build(cfg)
    preprocess = model.student.data_preprocessor
    sup = preprocess(_packed(((3, 64, 128), ), (3, )), True)
    unsup = preprocess(_packed(((3, 64, 128), ) * 3, (2, 2, 2), seed=1),
                       True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(
            dict(sup=sup['inputs'], unsup=unsup['inputs']),
            dict(sup=sup['data_samples'], unsup=unsup['data_samples']))
    assert PXL_KEYS <= set(losses)
    _, log_vars = model.parse_losses(losses)
    assert_losses_train(log_vars)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert _reached(model.student.vit.blocks) == []
