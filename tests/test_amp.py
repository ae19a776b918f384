# Copyright (c) mmcast contributors. All rights reserved.
"""Mixed precision (the configs' ``AmpOptimWrapper``), checked on the CPU.

``AmpOptimWrapper`` refuses the CPU, so the steps run a plain
``OptimWrapper``'s ``train_step`` inside ``torch.autocast('cpu', ...)``,
which puts the same ops in fp16 / bf16 as CUDA autocast does. Checks:

* one training step of every real-size Cityscapes stage model (1a, 1b, 2, 3
  and the labels-only baseline) and of Guided Distillation (the teacher's
  online labelling in the step) under fp16 and bf16, at the configs' 12544
  sampled points and with 6 or more target masks per branch (where an fp16
  ``num_masks * num_points`` passes 65504): finite losses, a positive
  ``loss_mask`` in every decoder layer, the parameters move;
* ``FP32LossMask2FormerHead``'s set-prediction losses under fp16 autocast equal
  its float32 losses for 1 to 40 target masks, where MMDetection's
  ``Mask2FormerHead`` gives a zero or non-finite ``loss_mask`` from 6 on;
  without autocast they are ``Mask2FormerHead``'s, bit for bit;
* ``FP32HungarianAssigner`` matches saturated logits under fp16 autocast
  where MMDetection's ``HungarianAssigner`` fails ("cost matrix is
  infeasible");
* ``PhotometricStrongView`` keeps its input's dtype and the fp32 result;
* every Mask2Former-family detector configured in ``configs/mmcast`` matches
  with ``FP32HungarianAssigner`` and computes its losses with an
  ``FP32LossMask2FormerHead``.

The stage models are built from the stage configs (registry, no weights
loaded) and made CPU-sized by config overrides only: 28x56 images, 10
queries, 2 transformer-decoder layers, 1 deformable
encoder layer, a ViT-S of 4 blocks (read out at each) instead of 12, and a
Swin of depths (2, 2, 2, 2) and 32-d embedding instead of Swin-L's
(2, 2, 18, 2) and 192-d (CPUs without fp16 / bf16 matrix units run
half-precision matmuls at ~0.1 GMAC/s, where Swin-L's window padding alone
makes a step take many minutes). Module types, options and data paths are
the stage configs'.
"""
import copy
import os.path as osp
from glob import glob

import pytest
import torch
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config, ConfigDict
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData

import mmcast  # noqa: F401
from mmcast.models.dense_heads import FP32LossMask2FormerHead
from mmcast.models.layers import PhotometricStrongView
from conftest import (assert_losses_train, conventional_config,
                      is_config_alias)

register_all_modules()

AMP_DTYPES = [
    pytest.param(torch.float16, id='fp16'),
    pytest.param(torch.bfloat16, id='bf16')
]
STAGES = {
    '1a': 'adapt_teacher_cityscapes',
    '1b': 'adapt_teacher_selftrain_cityscapes',
    '2': 'distill_cityscapes',
    '3': 'finetune_cityscapes',
    'baseline': 'supervised_student_cityscapes',
    'gd': 'guided_distillation/guided-distillation_dinov2-s_cityscapes',
}
IMAGE_SHAPE = (3, 28, 56)
SWIN_DIMS = 32  # embedding of the reduced Swin: 32/64/128/256 channels
MASK2FORMER_HEADS = ('Mask2FormerHead', 'FP32LossMask2FormerHead',
                     'CASTMask2FormerHead')


def _reduce(detector: ConfigDict) -> None:
    """Make a stage config's Mask2Former detector CPU-sized, in place."""
    detector.init_cfg = None
    detector.backbone.init_cfg = None
    head = detector.panoptic_head
    head.num_queries = 10
    head.transformer_decoder.num_layers = 2
    if head.pixel_decoder.type == 'MSDeformAttnPixelDecoder':
        head.pixel_decoder.encoder.num_layers = 1
    if detector.backbone.type == 'DINOv2MultiLevel':
        # ViT-S/14 width, read out at every block of 4
        detector.backbone.update(
            arch=dict(
                embed_dims=384, num_layers=4, num_heads=6,
                feedforward_channels=1536),
            out_indices=(0, 1, 2, 3))
    if detector.backbone.type == 'SwinTransformer':
        detector.backbone.update(
            embed_dims=SWIN_DIMS, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
        head.in_channels = [SWIN_DIMS * 2**i for i in range(4)]
        head.projection_head.in_channels = head.in_channels[-1]


def _packed(num_items, seed):
    """Raw (uint8, unpadded) images and samples with masks, one per item."""
    torch.manual_seed(seed)
    return demo_mm_inputs(
        len(num_items), [list(IMAGE_SHAPE)] * len(num_items),
        num_items=list(num_items), num_classes=8, with_mask=True)


@pytest.fixture(scope='module', params=list(STAGES))
def stage(request, repo_root):
    """(model, one training batch) of a stage config, reduced."""
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs', 'mmcast',
                 f'{STAGES[request.param]}.py'))
    model_cfg = cfg.model
    if model_cfg.type == 'CASTDistiller':
        # offline pseudo-labels: the teacher takes no part in train_step
        model_cfg.teacher = None
        model_cfg.teacher_checkpoint = None
        _reduce(model_cfg.student)
        sup, unsup = _packed([6], seed=0), _packed([7], seed=1)
        batch = dict(
            inputs=dict(sup=sup['inputs'], unsup=unsup['inputs']),
            data_samples=dict(
                sup=sup['data_samples'], unsup=unsup['data_samples']))
    elif model_cfg.type == 'GuidedDistiller':
        # the teacher labels the unlabeled batch in the step (autocast too);
        # the rule's thresholds opened so that the random teacher's queries
        # not classed "no object" become pseudo-instances
        model_cfg.teacher_checkpoint = None
        model_cfg.semi_train_cfg.pseudo_label_rule.update(
            score_thr=0.0, min_mask_area=0.0)
        _reduce(model_cfg.student)
        _reduce(model_cfg.teacher)
        sup, unsup = _packed([6], seed=0), _packed([0], seed=1)
        batch = dict(
            inputs=dict(sup=sup['inputs'], unsup=unsup['inputs']),
            data_samples=dict(
                sup=sup['data_samples'], unsup=unsup['data_samples']))
    else:
        _reduce(model_cfg)
        batch = _packed([3, 4], seed=0)
    torch.manual_seed(0)
    return MODELS.build(model_cfg), batch


@pytest.mark.parametrize('dtype', AMP_DTYPES)
def test_stage_model_trains_under_autocast(stage, dtype):
    model, batch = stage
    model.train()
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    before = {
        name: param.detach().clone()
        for name, param in model.named_parameters() if param.requires_grad
    }
    with torch.autocast('cpu', dtype=dtype):
        log_vars = model.train_step(copy.deepcopy(batch), optim_wrapper)
    assert 'loss' in log_vars
    assert_losses_train(log_vars)
    params = dict(model.named_parameters())
    assert all(torch.isfinite(params[name]).all() for name in before)
    moved = [
        name for name, value in before.items()
        if not torch.equal(params[name], value)
    ]
    prefix = 'student.' if 'student.backbone' in ''.join(before) else ''
    for module in ('backbone', 'panoptic_head.pixel_decoder',
                   'panoptic_head.transformer_decoder',
                   'panoptic_head.cls_embed'):
        assert any(n.startswith(prefix + module) for n in moved), module


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _saturated_targets_single(head, generator):
    """``head._get_targets_single`` on saturated logits: class scores
    ~N(0, 20²), mask logits ~N(0, 40²), 3 ground-truth masks."""
    num_queries, height, width = 100, 32, 64
    cls_score = 20 * torch.randn(
        num_queries, head.num_classes + 1, generator=generator)
    mask_pred = 40 * torch.randn(
        num_queries, height, width, generator=generator)
    gt = InstanceData(
        labels=torch.tensor([0, 3, 5]),
        masks=torch.rand(3, height, width, generator=generator) > 0.5)
    torch.manual_seed(0)  # the head's point sampling
    return head._get_targets_single(cls_score, mask_pred, gt, {})


def test_fp32_assigner_matches_saturated_logits_under_fp16(repo_root):
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs', 'mmcast', '_base_', 'models',
                 'student_dinov2-s_dpt-52m.py')).model
    assert cfg.train_cfg.assigner.type == 'FP32HungarianAssigner'
    assert cfg.train_cfg.num_points == 12544
    head_cfg = copy.deepcopy(cfg.panoptic_head)
    head_cfg.update(train_cfg=cfg.train_cfg, test_cfg=cfg.test_cfg)
    head = MODELS.build(head_cfg)

    with torch.autocast('cpu', dtype=torch.float16):
        targets = _saturated_targets_single(head, _generator())
    labels, pos_inds, sampling_result = targets[0], targets[4], targets[6]
    assert len(pos_inds) == len(set(pos_inds.tolist())) == 3
    assert sorted(sampling_result.pos_assigned_gt_inds.tolist()) == [0, 1, 2]
    assert sorted(labels[pos_inds].tolist()) == [0, 3, 5]
    # the same matching as without autocast
    reference = _saturated_targets_single(head, _generator())
    assert torch.equal(reference[4], pos_inds)
    assert torch.equal(reference[0], labels)

    head.assigner = TASK_UTILS.build(
        dict(cfg.train_cfg.assigner, type='HungarianAssigner'))
    with pytest.raises(ValueError, match='cost matrix is infeasible'):
        with torch.autocast('cpu', dtype=torch.float16):
            _saturated_targets_single(head, _generator())


def _layer_losses(head, num_masks: int, autocast: bool):
    """``head._loss_by_feat_single`` of one image: fp16 logits (class
    scores and 100 masks, as under autocast) and ``num_masks`` targets;
    under fp16 autocast or on float32 copies."""
    gen = _generator()
    height, width = 32, 64
    cls_scores = (4 * torch.randn(
        1, 100, head.num_classes + 1, generator=gen)).half()
    mask_preds = (4 * torch.randn(
        1, 100, height, width, generator=gen)).half()
    gt = InstanceData(
        labels=torch.randint(head.num_classes, (num_masks, ), generator=gen),
        masks=torch.rand(num_masks, height, width, generator=gen) > 0.5)
    torch.manual_seed(0)  # the head's point sampling
    if autocast:
        with torch.autocast('cpu', dtype=torch.float16):
            return head._loss_by_feat_single(cls_scores, mask_preds, [gt],
                                             [{}])
    return head._loss_by_feat_single(cls_scores.float(), mask_preds.float(),
                                     [gt], [{}])


@pytest.mark.parametrize('num_masks', [1, 5, 6, 40])
def test_head_losses_under_fp16_are_its_fp32_losses(repo_root, num_masks):
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs', 'mmcast', '_base_', 'models',
                 'student_dinov2-s_dpt-52m.py')).model
    head_cfg = copy.deepcopy(cfg.panoptic_head)
    head_cfg.update(train_cfg=cfg.train_cfg, test_cfg=cfg.test_cfg)
    assert head_cfg.type == 'FP32LossMask2FormerHead'
    assert cfg.train_cfg.num_points == 12544
    head = MODELS.build(head_cfg)
    reference = _layer_losses(head, num_masks, autocast=False)
    losses = _layer_losses(head, num_masks, autocast=True)
    for name, ref, loss in zip(('cls', 'mask', 'dice'), reference, losses):
        assert loss.dtype == torch.float32, name
        torch.testing.assert_close(loss, ref, rtol=1e-5, atol=0, msg=name)
    assert reference[1] > 0

    # MMDetection's head: loss_mask's fp16 normaliser overflows from 6 on
    stock = MODELS.build(dict(head_cfg, type='Mask2FormerHead'))
    stock.load_state_dict(head.state_dict())
    for name, ref, loss in zip(('cls', 'mask', 'dice'), reference,
                               _layer_losses(stock, num_masks, False)):
        assert torch.equal(loss, ref), name  # without autocast: the same
    stock_mask = _layer_losses(stock, num_masks, autocast=True)[1].float()
    overflows = num_masks * cfg.train_cfg.num_points > 65504
    assert (not torch.isfinite(stock_mask) or stock_mask == 0) == overflows


@pytest.mark.parametrize('dtype', AMP_DTYPES)
def test_strong_view_keeps_dtype_and_fp32_result(dtype):
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    # every image jittered, greyed and blurred
    view_cfg = dict(
        mean=mean, std=std, jitter_prob=1.0, gray_prob=1.0, blur_prob=1.0,
        seed=0)
    images = torch.rand(2, 3, 24, 40, generator=_generator())
    inputs = (images * 255 - torch.tensor(mean).view(1, 3, 1, 1)) / \
        torch.tensor(std).view(1, 3, 1, 1)
    reference = PhotometricStrongView(**view_cfg)(inputs)
    with torch.autocast('cpu', dtype=dtype):
        out = PhotometricStrongView(**view_cfg)(inputs)
        out_low = PhotometricStrongView(**view_cfg)(inputs.to(dtype))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, reference)
    assert out_low.dtype == dtype
    torch.testing.assert_close(
        out_low.float(), reference, atol=0.05, rtol=0.0)


def _config_paths(repo_root):
    """Every config file; the short-name aliases are their targets."""
    return sorted(
        p for p in glob(osp.join(repo_root, 'configs', 'mmcast', '**',
                                 '*.py'), recursive=True)
        if not is_config_alias(p))


def _mask2former_detectors(node, found):
    """Collect every detector dict with a Mask2Former-family head."""
    if isinstance(node, dict):
        if node.get('panoptic_head', {}).get('type') in MASK2FORMER_HEADS:
            found.append(node)
        for value in node.values():
            _mask2former_detectors(value, found)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _mask2former_detectors(value, found)
    return found


def test_every_mask2former_config_matches_and_trains_in_fp32(repo_root):
    """All of ``configs/mmcast`` (bases included; wrappers' students and
    stage configs' teachers are parsed configs too). Teachers that are only
    run for inference and named by a stock ``mmdet::`` config (the
    Mask2Former member of ``teachers/teacher_ensemble_cityscapes.py``) never
    match, and Grounding-DINO keeps its own assigner."""
    checked = []
    for path in _config_paths(repo_root):
        cfg = Config.fromfile(path)
        if 'model' not in cfg:
            continue
        for detector in _mask2former_detectors(cfg.model.to_dict(), []):
            assigner = detector['train_cfg']['assigner']
            assert assigner['type'] == 'FP32HungarianAssigner', path
            head = detector['panoptic_head']['type']
            assert issubclass(MODELS.get(head), FP32LossMask2FormerHead), \
                (path, head)
            checked.append(osp.relpath(path, repo_root))
    checked = set(checked)
    for name in ('_base_/models/cast_teacher_mask2former_swin-l.py',
                 '_base_/models/student_dinov2-s_dpt-52m.py',
                 '_base_/models/student_dinov2-s_dpt-79m.py',
                 '_base_/models/student_r50_msdeform.py',
                 '_base_/models/student_dinov2-s_fpn.py',
                 '_base_/models/mask2former_r18_toy.py',
                 '_base_/models/cast_mask2former_r34_toy_teacher.py',
                 '_base_/models/student_dinov2-tiny_dpt_toy.py',
                 'adapt_teacher_selftrain_cityscapes', 'distill_coco',
                 'distill_toy', 'finetune_ade20k'):
        # a short name: its conventional config
        path = conventional_config(name) if '/' not in name else \
            f'configs/mmcast/{name}'
        assert path in checked, name
