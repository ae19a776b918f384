# Copyright (c) mmcast contributors. All rights reserved.
"""The DINOv3 student: DINOv3MultiLevel (timm's DINOv3 ViT + the DPT
read-out), its checkpoint converter, the student model configs and the thin
DINOv3 stage configs."""
import copy
import math
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import pytest
import timm
import torch
from conftest import REPO_ROOT, config_names, load_script
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from timm.models.eva import checkpoint_filter_fn

import mmcast  # noqa: F401  (registers the modules)

register_all_modules(init_default_scope=True)

CONFIGS = osp.join(REPO_ROOT, 'configs', 'mmcast')
MODEL_CFGS = osp.join(CONFIGS, '_base_', 'models')
CONVERTER = osp.join(REPO_ROOT, 'tools', 'model_converters',
                     'dinov3_to_mmcast.py')
TINY_VIT = dict(embed_dim=64, depth=4, num_heads=4)
ARCH_S = 'vit_small_patch16_dinov3'
ARCH_SPLUS = 'vit_small_plus_patch16_dinov3'
DPT_PREFIXES = ('readout_projects.', 'reassemble_projects.',
                'reassemble_resizes.')
STAGES = ('distill', 'finetune', 'supervised_student')
DATASETS = ('cityscapes', 'ade20k', 'coco')
VARIANTS = {'dinov3-s': ARCH_S, 'dinov3-splus': ARCH_SPLUS}


def _tiny_backbone(arch=ARCH_S, **kwargs):
    cfg = dict(
        type='DINOv3MultiLevel',
        arch=arch,
        vit_cfg=TINY_VIT,
        out_indices=(0, 1, 2, 3),
        out_channels=(16, 32, 64, 128))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _converter():
    return load_script(CONVERTER)


# --------------------------------------------------------------------------
# backbone + DPT pixel decoder
# --------------------------------------------------------------------------
@pytest.mark.parametrize('hw', [(64, 128), (72, 150), (100, 90), (160, 80)])
def test_backbone_levels_fit_the_dpt_decoder(hw):
    """Strides 4/8/16/32 and 16/32/64/128 channels as the decoder expects,
    at multiples of 16, other sizes and 1:2 / 2:1 images."""
    torch.manual_seed(0)
    H, W = hw
    backbone = _tiny_backbone().eval()
    assert backbone.strides == (4.0, 8.0, 16.0, 32.0)
    decoder = MODELS.build(
        dict(
            type='DPTPixelDecoder',
            in_channels=[16, 32, 64, 128],
            strides=list(backbone.strides),
            feat_channels=48,
            out_channels=40,
            num_outs=3,
            encoder=dict(layer_cfg=dict(self_attn_cfg=dict(num_levels=3)))))
    decoder.init_weights()
    h, w = math.ceil(H / 16), math.ceil(W / 16)
    sizes = [(4 * h, 4 * w), (2 * h, 2 * w), (h, w),
             (math.ceil(h / 2), math.ceil(w / 2))]
    with torch.no_grad():
        feats = backbone(torch.randn(2, 3, H, W))
        mask_features, memories = decoder(list(feats))
    assert [tuple(f.shape) for f in feats] == [
        (2, c, *s) for c, s in zip((16, 32, 64, 128), sizes)]
    assert tuple(mask_features.shape) == (2, 40, *sizes[0])
    assert [tuple(m.shape) for m in memories] == [
        (2, 48, *sizes[3]), (2, 48, *sizes[2]), (2, 48, *sizes[1])]
    assert all(torch.isfinite(m).all() for m in [mask_features, *memories])


def test_register_tokens_are_dropped():
    """1 class + 4 register tokens precede the h*w patch tokens; the maps
    are the patch tokens alone (``ignore``) or with the class token added
    (``add``), never the registers."""
    torch.manual_seed(0)
    backbone = _tiny_backbone(readout_type='ignore').eval()
    assert backbone.num_extra_tokens == 5
    x = torch.randn(1, 3, 48, 80)
    with torch.no_grad():
        tokens, (h, w) = backbone.forward_tokens(x)
        feats = backbone(x)
        assert (h, w) == (3, 5)
        assert all(t.shape == (1, 5 + h * w, 64) for t in tokens)
        for level, t in enumerate(tokens):
            grid = t[:, 5:].transpose(1, 2).reshape(1, 64, h, w)
            expected = backbone.reassemble_resizes[level](
                backbone.reassemble_projects[level](grid))
            torch.testing.assert_close(feats[level], expected)
        backbone.readout_type = 'add'
        feats_add = backbone(x)
        grid = (tokens[2][:, 5:] + tokens[2][:, :1]).transpose(1, 2)
        torch.testing.assert_close(
            feats_add[2],
            backbone.reassemble_projects[2](grid.reshape(1, 64, h, w)))


def test_internal_padding_matches_explicit_padding():
    torch.manual_seed(0)
    backbone = _tiny_backbone().eval()
    x = torch.randn(1, 3, 50, 70)
    x_pad = torch.zeros(1, 3, 64, 80)
    x_pad[..., :50, :70] = x
    with torch.no_grad():
        for a, b in zip(backbone(x), backbone(x_pad)):
            torch.testing.assert_close(a, b)


def test_norm_intermediate_and_negative_indices():
    torch.manual_seed(0)
    normed = _tiny_backbone(out_indices=(1, -1), out_channels=(8, 8),
                            resize_factors=(1, 1)).eval()
    raw = _tiny_backbone(out_indices=(1, 3), out_channels=(8, 8),
                         resize_factors=(1, 1), norm_intermediate=False)
    raw.load_state_dict(normed.state_dict())
    assert normed.out_indices == (1, 3)
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        (n1, n3), _ = normed.forward_tokens(x)
        (r1, r3), _ = raw.eval().forward_tokens(x)
    torch.testing.assert_close(n1, normed.vit.norm(r1))
    assert not torch.allclose(n1, r1)
    torch.testing.assert_close(n3, r3)  # the last block: normalised in both


def test_frozen_stages_and_gradients():
    backbone = _tiny_backbone(frozen_stages=2).train()
    vit = backbone.vit
    assert not vit.blocks[1].attn.qkv.weight.requires_grad
    assert not vit.reg_token.requires_grad and not vit.cls_token.requires_grad
    assert not vit.patch_embed.proj.weight.requires_grad
    assert vit.blocks[2].attn.qkv.weight.requires_grad
    assert not vit.blocks[0].training and vit.blocks[2].training
    feats = backbone(torch.randn(1, 3, 48, 48))
    sum(f.sum() for f in feats).backward()
    assert vit.blocks[3].mlp.fc2.weight.grad.abs().sum() > 0
    assert backbone.reassemble_resizes[0].weight.grad.abs().sum() > 0
    assert vit.blocks[1].attn.qkv.weight.grad is None
    all_frozen = _tiny_backbone(frozen_stages=4).train()
    assert not all_frozen.vit.norm.weight.requires_grad


def test_bad_backbone_args():
    with pytest.raises(ValueError, match='vit_small_patch16_dinov4'):
        _tiny_backbone(arch='vit_small_patch16_dinov4')
    with pytest.raises(ValueError, match='resnet18'):
        MODELS.build(dict(type='DINOv3MultiLevel', arch='resnet18'))
    with pytest.raises(ValueError, match='out of range'):
        _tiny_backbone(out_indices=(0, 1, 2, 4))
    with pytest.raises(AssertionError, match='ascending'):
        _tiny_backbone(out_indices=(3, 1, 0, 2))
    with pytest.raises(AssertionError, match='readout_type'):
        _tiny_backbone(readout_type='mean')


# --------------------------------------------------------------------------
# converter: Meta's released layout -> timm (its filter) -> ours
# --------------------------------------------------------------------------
def _meta_state_dict(arch, seed=1):
    """Random tensors in Meta's released DINOv3 layout (timm's keys with
    ``checkpoint_filter_fn``'s renames inverted, plus what it drops)."""
    torch.manual_seed(seed)
    timm_sd = timm.create_model(arch, pretrained=False, num_classes=0,
                                **TINY_VIT).state_dict()
    renames = [('reg_token', 'storage_tokens'), ('gamma_1', 'ls1.gamma'),
               ('gamma_2', 'ls2.gamma'), ('mlp.fc1_g.', 'mlp.w1.'),
               ('mlp.fc1_x.', 'mlp.w2.')]
    if arch == ARCH_SPLUS:
        renames.append(('mlp.fc2.', 'mlp.w3.'))
    meta = OrderedDict()
    for key, value in timm_sd.items():
        for src, dst in renames:
            key = key.replace(src, dst)
        meta[key] = torch.randn_like(value)
        if key.endswith('attn.qkv.weight'):  # zero biases, k masked
            dim = value.shape[0]
            meta[key.replace('weight', 'bias')] = torch.zeros(dim)
            meta[key.replace('weight', 'bias_mask')] = torch.ones(dim)
    meta['mask_token'] = torch.randn(1, 64)
    meta['rope_embed.periods'] = torch.rand(4)
    return meta


@pytest.mark.parametrize('arch', [ARCH_S, ARCH_SPLUS])
def test_converted_meta_checkpoint_matches_timm(arch, tmp_path):
    """Converted, the Meta-layout weights fill every ViT parameter and give
    the block outputs of timm's own model loaded through timm's filter."""
    meta = _meta_state_dict(arch)
    assert ('blocks.0.mlp.w3.weight' in meta) == (arch == ARCH_SPLUS)
    converted = _converter().convert_dinov3(meta, arch, vit_cfg=TINY_VIT)
    path = str(tmp_path / 'dinov3_mmcast.pth')
    torch.save(dict(state_dict=converted), path)

    torch.manual_seed(0)
    backbone = _tiny_backbone(
        arch, init_cfg=dict(type='Pretrained', checkpoint=path))
    fresh = {k: v.clone() for k, v in backbone.state_dict().items()}
    backbone.init_weights()
    result = _tiny_backbone(arch).load_state_dict(converted, strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(
        k.startswith(DPT_PREFIXES) for k in result.missing_keys)
    state = backbone.state_dict()
    for key in converted:
        assert torch.equal(state[key], converted[key]), key
        assert not torch.equal(fresh[key], converted[key]), key
    torch.testing.assert_close(backbone.vit.reg_token, meta['storage_tokens'])
    torch.testing.assert_close(backbone.vit.blocks[2].gamma_1,
                               meta['blocks.2.ls1.gamma'])

    reference = timm.create_model(arch, pretrained=False, num_classes=0,
                                  **TINY_VIT).eval()
    reference.load_state_dict(checkpoint_filter_fn(meta, reference))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ours, _ = backbone.eval().forward_tokens(x)
        theirs = reference.forward_intermediates(
            x, indices=[0, 1, 2, 3], return_prefix_tokens=True, norm=True,
            output_fmt='NLC', intermediates_only=True)
    for y, (patch, prefix) in zip(ours, theirs):
        torch.testing.assert_close(y, torch.cat([prefix, patch], dim=1),
                                   rtol=0, atol=0)

    # timm's own layout (already filtered), wrapped and prefixed
    again = _converter().convert_dinov3(
        dict(model={'module.' + k[len('vit.'):]: v
                    for k, v in converted.items()}), arch, vit_cfg=TINY_VIT)
    assert list(again) == list(converted)
    assert all(torch.equal(again[k], converted[k]) for k in converted)


def test_converter_refuses_what_does_not_fit():
    converter = _converter()
    meta = _meta_state_dict(ARCH_S)
    meta['blocks.1.attn.qkv.bias'][0] = 0.5
    with pytest.raises(ValueError, match='blocks.1.attn.qkv.bias'):
        converter.convert_dinov3(meta, ARCH_S, vit_cfg=TINY_VIT)
    with pytest.raises(ValueError, match='missing'):  # S weights, S+ model
        converter.convert_dinov3(_meta_state_dict(ARCH_S), ARCH_SPLUS,
                                 vit_cfg=TINY_VIT)
    assert converter.guess_arch(_meta_state_dict(ARCH_SPLUS)) == ARCH_SPLUS
    assert converter.guess_arch(_meta_state_dict(ARCH_S)) == ARCH_S


def test_converter_cli(tmp_path):
    missing = str(tmp_path / 'nowhere' / 'dinov3_vits16_pretrain.pth')
    proc = subprocess.run(
        [sys.executable, CONVERTER, missing, str(tmp_path / 'out.pth')],
        capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f'checkpoint not found: {missing}']
    assert not (tmp_path / 'out.pth').exists()

    # the real S+ shapes, guessed from the SwiGLU keys
    torch.manual_seed(0)
    meta = timm.create_model(ARCH_SPLUS, pretrained=False,
                             num_classes=0).state_dict()
    meta = OrderedDict((k.replace('reg_token', 'storage_tokens')
                        .replace('mlp.fc1_g.', 'mlp.w1.')
                        .replace('mlp.fc1_x.', 'mlp.w2.')
                        .replace('mlp.fc2.', 'mlp.w3.'), v)
                       for k, v in meta.items())
    src, dst = tmp_path / 'meta.pth', tmp_path / 'out' / 'converted.pth'
    torch.save(meta, src)
    proc = subprocess.run([sys.executable, CONVERTER, str(src), str(dst)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = torch.load(dst, map_location='cpu', weights_only=True)['state_dict']
    assert len(out) == len(meta)
    assert torch.equal(out['vit.blocks.7.mlp.fc2.weight'],
                       meta['blocks.7.mlp.w3.weight'])
    assert sorted(p.name for p in dst.parent.iterdir()) == ['converted.pth']


# --------------------------------------------------------------------------
# tiny student: a training step and predictions
# --------------------------------------------------------------------------
def test_tiny_student_trains_a_step_and_predicts():
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(MODEL_CFGS,
                                   'student_dinov3-tiny_dpt_toy.py'))
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert model.backbone.strides == (2.0, 4.0, 8.0, 16.0)
    packed = demo_mm_inputs(
        batch_size=2, image_shapes=[(3, 96, 192), (3, 90, 170)],
        num_items=[3, 2], num_classes=8, with_mask=True)
    model.train()
    data = model.data_preprocessor(packed, True)
    assert data['inputs'].shape[-2:] == (96, 192)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    vit = model.backbone.vit
    assert vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert vit.reg_token.grad.abs().sum() > 0
    assert model.backbone.reassemble_projects[0].weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(packed, False),
                        mode='predict')
    for res, hw in zip(results, [(96, 192), (90, 170)]):
        assert tuple(res.pred_instances.masks.shape[-2:]) == hw


# --------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------
def _num_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('name, vit, total', [
    ('student_dinov3-s_dpt.py', 21_586_944, 50_567_881),
    ('student_dinov3-splus_dpt.py', 28_683_264, 57_664_201),
    # + the L_pxl projection head (768 -> 128 -> 128 -> 128)
    ('cast_student_dinov3-s_dpt.py', 21_586_944, 50_698_953),
    ('cast_student_dinov3-splus_dpt.py', 28_683_264, 57_795_273),
])
def test_real_size_students_build(name, vit, total):
    """The ViT of timm's S / S+ and the DINOv2-S student's DPT read-out and
    head (same widths: the backbone differs by the ViT alone)."""
    cfg = Config.fromfile(osp.join(MODEL_CFGS, name))
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    assert cfg.model.data_preprocessor.pad_size_divisor == 32
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert _num_params(model.backbone.vit) == vit
    # DPT read-out and reassemble: the DINOv2-S student's 7.34 M
    assert _num_params(model.backbone) - vit == 7_339_968
    assert _num_params(model) == total
    assert model.backbone.strides == tuple(
        cfg.model.panoptic_head.pixel_decoder.strides)


def _student(cfg: Config) -> dict:
    model = cfg.model
    return model.student if model.type == 'CASTDistiller' else model


@pytest.mark.parametrize('variant', list(VARIANTS))
@pytest.mark.parametrize('stage', STAGES)
@pytest.mark.parametrize('ds', DATASETS)
def test_stage_config_swaps_only_the_backbone(ds, stage, variant):
    """The thin DINOv3 stage config is its DINOv2 stage config but for the
    student's backbone, strides, padding, no-decay keys and (stage 3) the
    stage-2 checkpoint it starts from."""
    ours = Config.fromfile(osp.join(CONFIGS, f'{stage}_{ds}_{variant}.py'))
    base = Config.fromfile(osp.join(CONFIGS, f'{stage}_{ds}.py'))
    student, base_student = _student(ours), _student(base)
    backbone = student.backbone
    assert backbone.type == 'DINOv3MultiLevel'
    assert backbone.arch == VARIANTS[variant]
    assert backbone.out_channels == base_student.backbone.out_channels
    if stage == 'finetune':
        assert backbone.init_cfg is None
        # the stage-2 run of the same variant, by its work dir
        assert base.model.init_cfg.checkpoint.startswith('work-dir://')
        assert ours.model.init_cfg.checkpoint == 'work-dir://work_dirs/' + \
            config_names()[f'distill_{ds}_{variant}']
    else:
        assert backbone.init_cfg.type == 'Pretrained'
    assert student.data_preprocessor.pad_size_divisor == 32
    assert student.panoptic_head.strides == [4, 8, 16, 32]
    assert student.panoptic_head.pixel_decoder.strides == [4, 8, 16, 32]
    keys = ours.optim_wrapper.paramwise_cfg.custom_keys
    assert keys['backbone.vit.blocks.11.gamma_2'].decay_mult == 0

    a, b = ours.to_dict(), base.to_dict()
    for cfg in (a, b):
        student = cfg['model'].get('student', cfg['model'])
        for key in ('backbone', 'data_preprocessor'):
            student.pop(key)
        for key in ('strides', 'pixel_decoder'):
            student['panoptic_head'].pop(key)
        cfg['model'].get('data_preprocessor', {}).pop('data_preprocessor',
                                                      None)
        if cfg['model'].get('init_cfg'):  # stage 3: checked above
            cfg['model']['init_cfg'].pop('checkpoint')
        cfg['optim_wrapper']['paramwise_cfg'].pop('custom_keys')
        # work_dir: each short-name alias trains in its own config's
        for key in [k for k in cfg if k.startswith('dinov3_')] + [
                'data_preprocessor', 'distilled_student', 'work_dir']:
            cfg.pop(key, None)
    assert a == b


def _reduced_model(cfg: Config):
    """A stage config's student, CPU-sized: 4 blocks, 2 decoder layers."""
    model = copy.deepcopy(cfg.model)
    if model.type == 'CASTDistiller':
        model = model.student
    model.init_cfg = None
    model.backbone.update(
        init_cfg=None, vit_cfg=dict(depth=4), out_indices=(0, 1, 2, 3))
    model.train_cfg.num_points = 64
    model.panoptic_head.num_queries = 10
    model.panoptic_head.transformer_decoder.num_layers = 2
    return MODELS.build(model)


@pytest.mark.parametrize('stage,dtype', [
    ('distill', torch.float16), ('distill', torch.bfloat16),
    ('supervised_student', torch.float16), ('finetune', torch.bfloat16)
], ids=['distill-fp16', 'distill-bf16', 'baseline-fp16', 'finetune-bf16'])
def test_stage_student_trains_under_autocast(stage, dtype):
    """As the DINOv2 stages in test_amp.py: a training step of the
    (reduced) Cityscapes DINOv3 student under CPU autocast (the stage-3 and
    baseline students are the same network: one dtype each)."""
    cfg = Config.fromfile(osp.join(CONFIGS,
                                   f'{stage}_cityscapes_dinov3-s.py'))
    torch.manual_seed(0)
    model = _reduced_model(cfg).train()
    packed = demo_mm_inputs(2, [[3, 32, 64]] * 2, num_items=[2, 3],
                            num_classes=8, with_mask=True)
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    before = model.backbone.vit.blocks[0].attn.qkv.weight.detach().clone()
    with torch.autocast('cpu', dtype=dtype):
        log_vars = model.train_step(packed, optim_wrapper)
    assert all(math.isfinite(float(v)) for v in log_vars.values())
    after = model.backbone.vit.blocks[0].attn.qkv.weight
    assert not torch.equal(before, after)


# --------------------------------------------------------------------------
# the toy labels-only configs of the tiny DINOv2 / DINOv3 students
# --------------------------------------------------------------------------
TOY_STUDENTS = {
    v: osp.join(CONFIGS, 'toy',
                f'supervised_{v}-tiny-dpt_1xb4-2000it_toy-10p.py')
    for v in ('dinov2', 'dinov3')
}


@pytest.mark.parametrize('version', sorted(TOY_STUDENTS))
def test_toy_student_config_trains_under_the_runner(version, toy_data_root,
                                                    tmp_path):
    """Two iterations and a validation through MMEngine's runner, on the
    toy data, with the backbone the name says; then a step of the same
    model under bf16 autocast."""
    import glob
    import json

    from conftest import toy_runner_config
    from mmengine.runner import Runner

    work_dir = str(tmp_path)
    cfg = toy_runner_config(
        TOY_STUDENTS[version], toy_data_root, work_dir,
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'param_scheduler.end=2', 'train_dataloader.dataset.ann_file='
        'annotations/semi/instancesonly_filtered_gtFine_train.1@25.json')
    runner = Runner.from_cfg(cfg)
    backbone = runner.model.backbone
    assert type(backbone).__name__ == \
        {'dinov2': 'DINOv2MultiLevel', 'dinov3': 'DINOv3MultiLevel'}[version]
    before = copy.deepcopy(backbone.state_dict())
    runner.train()
    moved = [k for k, v in backbone.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, before[k])]
    assert len(moved) > len(before) // 2
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    (scalars, ) = glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json'))
    with open(scalars) as f:
        logged = [json.loads(line) for line in f]
    assert any('coco/segm_mAP' in entry for entry in logged)

    model = runner.model.train()
    packed = demo_mm_inputs(2, [[3, 96, 192]] * 2, num_items=[2, 3],
                            num_classes=8, with_mask=True)
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        log_vars = model.train_step(packed, optim_wrapper)
    assert all(math.isfinite(float(v)) for v in log_vars.values())
