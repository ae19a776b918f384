# Copyright (c) mmcast contributors. All rights reserved.
"""The real-size EoMT student (DINOv3 ViT-S/16, 200 queries in its last 4
blocks) in CAST's stages 2 and 3, the labels-only baseline and Guided
Distillation on Cityscapes: each config is its DINOv3-S DPT twin's but for
the student; each trains a step at reduced size under CPU autocast; the
hand-offs (the converted DINOv3 weights, stage 1b -> 2 -> 3, the baseline
-> Guided Distillation) are the ones the pipeline plans, and stage 3 loads
stage 2's student."""
import copy
import os.path as osp

import pytest
import torch
from conftest import REPO_ROOT, assert_losses_train, config_names
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import mmcast  # noqa: F401  (registers the modules)

register_all_modules(init_default_scope=True)

CONFIGS = osp.join(REPO_ROOT, 'configs', 'mmcast')
VARIANT = 'eomt-dinov3-s'
STAGES = ('distill', 'finetune', 'supervised_student')
GD = osp.join(CONFIGS, 'guided_distillation',
              f'guided-distillation_{VARIANT}_cityscapes.py')
GD_TOY = osp.join(CONFIGS, 'guided_distillation',
                  'guided-distillation_eomt-dinov3-tiny_toy.py')
GD_DPT = osp.join(CONFIGS, 'guided_distillation',
                  'guided-distillation_dinov2-s_cityscapes.py')
NUM_CLASSES = 8
VIT_PARAMS = 21_586_944  # timm's vit_small_patch16_dinov3


def _load(stage: str, variant: str = VARIANT) -> Config:
    return Config.fromfile(
        osp.join(CONFIGS, f'{stage}_cityscapes_{variant}.py'))


def _student(model: dict) -> dict:
    return model.student if 'student' in model else model


def _hooks(cfg: Config) -> dict:
    return {hook.type: hook for hook in cfg.get('custom_hooks', [])}


@pytest.mark.parametrize('name,total', [
    ('eomt_dinov3-s.py', 23_299_593),
    # + the L_pxl projection head (384 -> 128 -> 128 -> 128, no bias)
    ('cast_distiller_eomt-dinov3-s.py', 23_299_593 + 81_920),
])
def test_real_size_model_builds(name, total):
    """ViT-S/16 of timm, 200 queries, 4 blocks with queries, 8 classes, two
    scale blocks to stride 4; the converted DINOv3-S file as its weights."""
    cfg = Config.fromfile(osp.join(CONFIGS, '_base_', 'models', name))
    student = _student(cfg.model)
    assert student.init_cfg == dict(
        type='Pretrained',
        checkpoint='checkpoints/dinov3_vits16_pretrain_mmcast.pth')
    student.init_cfg = None
    model = MODELS.build(cfg.model)
    eomt = getattr(model, 'student', model)
    assert (eomt.num_queries, eomt.num_blocks_with_queries) == (200, 4)
    assert sum(p.numel() for p in eomt.vit.parameters()) == VIT_PARAMS
    assert sum(p.numel() for p in model.parameters()) == total
    assert len(eomt.upscale) == 2 and eomt.patch_size == 16
    assert eomt.data_preprocessor.pad_size_divisor == 16


@pytest.mark.parametrize('stage', STAGES)
def test_stage_is_its_dpt_twin_but_for_the_student(stage):
    """Data, schedule, teacher, pseudo-labels, hooks and losses are those of
    the DINOv3-S DPT stage config; the EoMT adds its annealing, its ViT's
    parameter keys and (stage 2) L_pxl on 384-d patch tokens."""
    ours, dpt = _load(stage), _load(stage, 'dinov3-s')
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator',
                'train_cfg', 'param_scheduler', 'auto_scale_lr',
                'default_hooks', 'runner_type'):
        assert ours[key] == dpt[key], key
    if stage == 'distill':
        for key in ('type', 'teacher', 'teacher_checkpoint',
                    'semi_train_cfg'):
            assert ours.model[key] == dpt.model[key], key
        # the same preprocessing, padded to the patch (16), not to 32
        assert ours.model.data_preprocessor.data_preprocessor == dict(
            dpt.model.data_preprocessor.data_preprocessor,
            pad_size_divisor=16)
    optim, dpt_optim = (copy.deepcopy(c.optim_wrapper) for c in (ours, dpt))
    keys = optim.paramwise_cfg.pop('custom_keys')
    dpt_keys = dpt_optim.paramwise_cfg.pop('custom_keys')
    assert optim == dpt_optim
    assert keys['vit.blocks.11.gamma_2'] == dict(lr_mult=0.1, decay_mult=0.0)
    assert {k: v for k, v in keys.items() if not k.startswith('vit.')} == \
        {k: v for k, v in dpt_keys.items() if not k.startswith('backbone.vit')}

    student, dpt_student = _student(ours.model), _student(dpt.model)
    head = dpt_student.panoptic_head
    assert student.type == 'EoMTStudent'
    assert student.vit.arch == dpt_student.backbone.arch
    for key in ('loss_cls', 'loss_mask', 'loss_dice'):
        assert student.criterion[key] == head[key], key
    assert student.criterion.num_things_classes == NUM_CLASSES
    for key in ('panoptic_fusion_head', 'train_cfg', 'test_cfg'):
        assert student[key] == dpt_student[key], key
    if stage == 'distill':
        assert student.strong_view == dpt_student.strong_view
        assert student.loss_pixel_contrast == head.loss_pixel_contrast
        assert student.loss_pixel_contrast.negatives_from == 'global'
        assert student.projection_head == dict(head.projection_head,
                                               in_channels=384)
    else:
        assert 'loss_pixel_contrast' not in student
    hooks, dpt_hooks = _hooks(ours), _hooks(dpt)
    assert set(hooks) == set(dpt_hooks) | {'MaskAnnealingHook'}
    assert all(hooks[k] == dpt_hooks[k] for k in dpt_hooks)


def _annealing_parts(cfg: Config, blocks: int = 4) -> None:
    """EoMT's windows: block j over [(j + 1) N / 6, (j + 2) N / 6)."""
    hook = _hooks(cfg)['MaskAnnealingHook']
    part = cfg.train_cfg.max_iters / (blocks + 2)
    assert list(hook.start_iters) == [round(part * j) for j in (1, 2, 3, 4)]
    assert list(hook.end_iters) == [round(part * j) for j in (2, 3, 4, 5)]
    assert hook.power == 0.9


def test_guided_distillation_is_the_dpt_config_but_for_the_student():
    ours, dpt = Config.fromfile(GD), Config.fromfile(GD_DPT)
    for key in ('train_dataloader', 'train_cfg', 'param_scheduler',
                'auto_scale_lr', 'runner_type'):
        assert ours[key] == dpt[key], key
    assert ours.optim_wrapper.optimizer == dpt.optim_wrapper.optimizer
    assert ours.model.student == ours.model.teacher
    assert ours.model.student.type == 'EoMTStudent'
    for key in ('semi_train_cfg', 'semi_test_cfg', 'strong_view'):
        assert ours.model[key] == dpt.model[key], key
    assert _hooks(ours)['GuidedTeacherHook'] == _hooks(dpt)[
        'GuidedTeacherHook']
    for cfg in (ours, _load('distill'), _load('finetune'),
                _load('supervised_student')):
        _annealing_parts(cfg)


def test_hand_offs_follow_the_stage_table_and_the_pipeline(tmp_path):
    """Stage 2 reads stage 1b's teacher (as every Cityscapes student),
    stage 3 its own stage 2, Guided Distillation its own baseline: by
    default work dir, and as ``--student eomt-dinov3-s`` plans them."""
    from mmcast.apis.pipeline import (ConfigLoader, Planner, RunSpec,
                                      parse_args)
    names = config_names()
    distill = _load('distill')
    assert distill.model.teacher_checkpoint == 'work-dir://work_dirs/' + \
        names['adapt_teacher_selftrain_cityscapes']
    assert distill.model.teacher == 'configs/mmcast/cast/' + \
        names['adapt_teacher_cityscapes'] + '.py'
    assert _load('finetune').model.init_cfg == dict(
        type='Pretrained', prefix='student.', checkpoint='work-dir://'
        f'work_dirs/{names[f"distill_cityscapes_{VARIANT}"]}')
    assert Config.fromfile(GD).model.teacher_checkpoint == \
        'work-dir://work_dirs/' + \
        names[f'supervised_student_cityscapes_{VARIANT}']

    spec = RunSpec.from_args(parse_args([
        'cityscapes', '--work-dir', str(tmp_path / 'run'),
        '--pretrained-teacher', str(tmp_path / 'theta0.pth'),
        '--student', VARIANT, '--methods', 'cast', 'gd']))
    plan = Planner(spec, ConfigLoader(spec)).plan()
    stages = {stage.key: stage for stage in plan.stages}
    for key in STAGES:
        assert stages[key].config == \
            f'configs/mmcast/{key}_cityscapes_{VARIANT}.py'
    assert stages['guided_distillation'].config == osp.relpath(GD, REPO_ROOT)
    assert stages['adapt_teacher_selftrain'].config == \
        'configs/mmcast/adapt_teacher_selftrain_cityscapes.py'
    over = {k: s.overrides.as_dict() for k, s in stages.items()}
    assert over['distill']['model.teacher_checkpoint'] == \
        stages['adapt_teacher_selftrain'].final
    assert over['finetune']['model.init_cfg.checkpoint'] == \
        stages['distill'].final
    assert over['guided_distillation']['model.teacher_checkpoint'] == \
        stages['supervised_student'].final
    assert not tmp_path.joinpath('run').exists()  # nothing written


# --------------------------------------------------------------------------
# reduced-size steps (as the DINOv3 DPT stages in test_dinov3_student.py)
# --------------------------------------------------------------------------
def _reduce(student: dict) -> None:
    """CPU size in place: 4 blocks (2 with queries), 10 queries, 64 points;
    no weights loaded."""
    student.init_cfg = None
    student.vit.vit_cfg = dict(depth=4)
    student.num_queries = 10
    student.num_blocks_with_queries = 2
    student.train_cfg.num_points = 64


def _reduced(cfg: Config, reduce: bool = True):
    """The config's model, brought to CPU size unless ``reduce`` is off
    (a toy config is that size already)."""
    model = copy.deepcopy(cfg.model)
    for key in ('student', 'teacher'):
        if reduce and isinstance(model.get(key), dict):
            _reduce(model[key])
    if reduce and 'student' not in model:
        _reduce(model)
    model.pop('teacher_checkpoint', None)
    if model.type == 'CASTDistiller':
        model.teacher = None
    torch.manual_seed(0)
    return MODELS.build(model)


def _batch(preprocessor, items, seed, labeled=True):
    torch.manual_seed(seed)
    packed = demo_mm_inputs(len(items), [[3, 64, 128]] * len(items),
                            num_items=list(items), num_classes=NUM_CLASSES,
                            with_mask=True)
    data = preprocessor(packed, True)
    if not labeled:
        for sample in data['data_samples']:
            sample.gt_instances = sample.gt_instances[:0]
    return data['inputs'], data['data_samples']


def _branches(model, unlabeled=False):
    """Two labeled images and two (pseudo-labeled, or unlabeled) others."""
    preprocessor = model.student.data_preprocessor
    sup = _batch(preprocessor, (2, 1), 0)
    other = _batch(preprocessor, (1, 3), 1, labeled=not unlabeled)
    return (dict(sup=sup[0], unsup=other[0]),
            dict(sup=sup[1], unsup=other[1]))


def _step(model, losses: dict, dtype=torch.bfloat16) -> None:
    """An SGD step as AMP takes it: under fp16 with a loss scale
    (GradScaler, 2**10: a step with any inf or NaN gradient would be skipped
    and the scale lowered; without a scale the first block's fp16 gradients
    underflow, the random init's LayerScales being small), under bf16
    without. Gradients reach the first block and the queries, and the step
    is taken."""
    student = getattr(model, 'student', model)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler(
        'cpu', init_scale=2.**10, enabled=dtype == torch.float16)
    qkv = student.vit.blocks[0].attn.qkv.weight
    before = qkv.detach().clone()
    scaler.scale(sum(v for k, v in losses.items() if 'loss' in k)).backward()
    for param in (qkv, student.query_embed.weight):
        assert param.grad.abs().sum() > 0
    scaler.step(optimizer)
    scaler.update()
    assert not scaler.is_enabled() or scaler.get_scale() == 2.**10
    assert not torch.equal(before, qkv)


@pytest.mark.parametrize('stage,dtype', [
    ('distill', torch.float16), ('distill', torch.bfloat16),
    ('supervised_student', torch.float16), ('finetune', torch.bfloat16)
], ids=['distill-fp16', 'distill-bf16', 'baseline-fp16', 'finetune-bf16'])
def test_stage_trains_a_step_under_autocast(stage, dtype):
    """Stage 2: both branches in one forward, every supervised block's
    losses per branch and L_pxl over both; stage 3 and the baseline: the
    student's losses of every supervised block."""
    model = _reduced(_load(stage)).train()
    if stage == 'distill':
        inputs, samples = _branches(model)
        keys = {'loss_pxl', 'sup_d0.loss_mask', 'unsup_d1.loss_mask',
                'unsup_loss_dice'}
    else:
        inputs, samples = _batch(model.data_preprocessor, (2, 3), 0)
        keys = {'d0.loss_mask', 'd1.loss_cls', 'loss_dice'}
    with torch.autocast('cpu', dtype=dtype):
        losses = model.loss(inputs, samples)
    _, log_vars = model.parse_losses(losses)
    assert keys <= set(log_vars)
    assert_losses_train(log_vars)
    _step(model, losses, dtype)
    if stage == 'distill':
        assert all(p.grad.abs().sum() > 0
                   for p in model.student.projection_head.parameters())


@pytest.mark.parametrize('config', [GD, GD_TOY], ids=['cityscapes', 'toy'])
def test_guided_distillation_labels_with_the_eomt_teacher(config):
    """The teacher's final prediction of each unlabeled image (not of the
    batch's last image) gives its pseudo-instances; the student trains on
    both branches under bf16 autocast, the teacher gets no gradient: the
    Cityscapes config at reduced size, the toy one as it ships."""
    model = _reduced(Config.fromfile(config), reduce=config == GD).train()
    model.semi_train_cfg['pseudo_label_rule'].update(score_thr=0.0,
                                                     min_mask_area=0.0)
    inputs, samples = _branches(model, unlabeled=True)
    with torch.no_grad():
        cls_logits, mask_logits = model.teacher._forward(inputs['unsup'])
    keep = cls_logits.argmax(-1) != NUM_CLASSES
    expected = [int((k & (m.sigmoid() > 0.5).flatten(1).any(1)).sum())
                for k, m in zip(keep, mask_logits)]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(inputs, samples)
    assert [len(s.gt_instances) for s in samples['unsup']] == expected
    assert sum(expected) > 0
    assert float(losses['pseudo_per_image']) == sum(expected) / 2
    assert {'sup_loss_cls', 'unsup_d0.loss_dice'} <= set(losses)
    _step(model, losses)
    assert all(p.grad is None for p in model.teacher.parameters())


def test_optimiser_groups_slow_the_vit_and_spare_its_norms():
    """ViT x0.1 of the lr (its tokens, norms and LayerScales without
    weight decay), queries without decay, heads at the full lr."""
    cfg = _load('supervised_student')
    model = _reduced(cfg)
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg.type = 'OptimWrapper'  # AMP needs a GPU
    wrapper = build_optim_wrapper(model, optim_cfg)
    groups = {id(p): g for g in wrapper.optimizer.param_groups
              for p in g['params']}
    params = dict(model.named_parameters())
    lr, decay = optim_cfg.optimizer.lr, optim_cfg.optimizer.weight_decay

    def of(name):
        group = groups[id(params[name])]
        return group['lr'], group['weight_decay']

    assert of('vit.blocks.0.attn.qkv.weight') == (0.1 * lr, decay)
    for name in ('vit.blocks.3.norm1.weight', 'vit.blocks.1.gamma_2',
                 'vit.cls_token', 'vit.reg_token', 'vit.norm.weight'):
        assert of(name) == (0.1 * lr, 0.0), name
    assert of('query_embed.weight') == (lr, 0.0)
    assert of('class_head.weight') == (lr, decay)


def test_weights_hand_over_by_init_cfg(tmp_path):
    """The baseline's ViT loads the converted DINOv3 file (timm names
    under ``vit.``); stage 3 loads every weight of stage 2's student from
    its ``student.*`` checkpoint but L_pxl's projection head."""
    distill = _reduced(_load('distill'))
    vit_file, stage2_file = tmp_path / 'dinov3.pth', tmp_path / 'stage2.pth'
    torch.save({'state_dict': {f'vit.{k}': v for k, v in
                               distill.student.vit.state_dict().items()}},
               vit_file)
    torch.save({'state_dict': {f'student.{k}': v for k, v in
                               distill.student.state_dict().items()}},
               stage2_file)
    for stage, checkpoint in (('supervised_student', vit_file),
                              ('finetune', stage2_file)):
        cfg = _load(stage)
        model = copy.deepcopy(cfg.model)
        _reduce(model)
        model.init_cfg = dict(cfg.model.init_cfg or dict(type='Pretrained'),
                              checkpoint=str(checkpoint))
        torch.manual_seed(1)
        model = MODELS.build(model)
        model.init_weights()
        source = distill.student.state_dict()
        loaded = {k for k, v in model.state_dict().items()
                  if torch.equal(v, source[k])}
        if stage == 'finetune':
            assert loaded == set(model.state_dict()) == {
                k for k in source if not k.startswith('projection_head.')}
        else:  # the ViT; queries and heads keep their own init
            assert {f'vit.{k}' for k in distill.student.vit.state_dict()} \
                <= loaded
            assert not {'query_embed.weight', 'class_head.weight',
                        'mask_head.0.weight', 'upscale.0.up.weight'} & loaded
