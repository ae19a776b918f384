# Copyright (c) mmcast contributors. All rights reserved.
"""The CAST student: DINOv2MultiLevel backbone, DPT / FPN pixel decoders,
the student model configs and the official-DINOv2 checkpoint converter."""
import copy
import math
import os.path as osp
from collections import OrderedDict

import pytest
import torch

import mmcast  # noqa: F401  (registers the modules)
from mmengine.config import Config
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules

from conftest import load_script

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODEL_CFGS = osp.join(REPO_ROOT, 'configs', 'mmcast', '_base_', 'models')

register_all_modules(init_default_scope=True)

TINY_ARCH = dict(
    embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=128)


def _tiny_backbone(patch_size=14, readout_type='project', **kwargs):
    return MODELS.build(
        dict(
            type='DINOv2MultiLevel',
            arch=TINY_ARCH,
            img_size=56,
            patch_size=patch_size,
            out_indices=(0, 1, 2, 3),
            out_channels=(16, 32, 64, 128),
            readout_type=readout_type,
            layer_scale_init_value=0.1,
            **kwargs))


def _load_cfg(name):
    return Config.fromfile(osp.join(MODEL_CFGS, name))


def _num_params(module):
    return sum(p.numel() for p in module.parameters())


def _load_converter():
    return load_script(osp.join(REPO_ROOT, 'tools', 'model_converters',
                                'dinov2_to_mmcast.py'))


# --------------------------------------------------------------------------
# backbone + pixel decoders: shapes and strides
# --------------------------------------------------------------------------
@pytest.mark.parametrize('hw', [(64, 128), (70, 140), (100, 150), (56, 84)])
def test_backbone_and_dpt_shapes(hw):
    torch.manual_seed(0)
    H, W = hw
    backbone = _tiny_backbone().eval()
    assert backbone.strides == (3.5, 7.0, 14.0, 28.0)
    decoder = MODELS.build(
        dict(
            type='DPTPixelDecoder',
            in_channels=[16, 32, 64, 128],
            strides=[3.5, 7, 14, 28],
            feat_channels=48,
            out_channels=40,
            num_outs=3,
            encoder=dict(layer_cfg=dict(self_attn_cfg=dict(num_levels=3)))))
    decoder.init_weights()
    h, w = math.ceil(H / 14), math.ceil(W / 14)  # patch grid after padding
    sizes = [(4 * h, 4 * w), (2 * h, 2 * w), (h, w),
             (math.ceil(h / 2), math.ceil(w / 2))]
    with torch.no_grad():
        feats = backbone(torch.randn(2, 3, H, W))
        mask_features, memories = decoder(list(feats))
    assert len(feats) == 4
    for feat, c, size in zip(feats, (16, 32, 64, 128), sizes):
        assert tuple(feat.shape) == (2, c, *size)
    assert tuple(mask_features.shape) == (2, 40, *sizes[0])
    # memories: low -> high resolution (strides 28, 14, 7)
    assert [tuple(m.shape) for m in memories] == [
        (2, 48, *sizes[3]), (2, 48, *sizes[2]), (2, 48, *sizes[1])
    ]
    assert all(torch.isfinite(m).all() for m in [mask_features, *memories])


def test_fpn_pixel_decoder_shapes():
    torch.manual_seed(0)
    backbone = _tiny_backbone().eval()
    decoder = MODELS.build(
        dict(
            type='MultiLevelFPNPixelDecoder',
            in_channels=[16, 32, 64, 128],
            feat_channels=64,
            out_channels=32,
            num_outs=3,
            strides=[3.5, 7, 14, 28],
            norm_cfg=dict(type='GN', num_groups=16),
            encoder=dict(layer_cfg=dict(self_attn_cfg=dict(num_levels=3)))))
    decoder.init_weights()
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 100, 150))
        mask_features, memories = decoder(list(feats))
    assert tuple(mask_features.shape) == (1, 32, 32, 44)
    assert [tuple(m.shape[-2:]) for m in memories] == [(4, 6), (8, 11),
                                                        (16, 22)]
    assert all(m.shape[1] == 64 for m in memories)


@pytest.mark.parametrize('readout_type', ['ignore', 'add', 'project'])
def test_internal_padding_matches_explicit_padding(readout_type):
    """A 64x128 input behaves exactly like the zero-padded 70x140 one."""
    torch.manual_seed(0)
    backbone = _tiny_backbone(readout_type=readout_type).eval()
    x = torch.randn(1, 3, 64, 128)
    x_pad = torch.zeros(1, 3, 70, 140)
    x_pad[..., :64, :128] = x
    with torch.no_grad():
        a, b = backbone(x), backbone(x_pad)
    for fa, fb in zip(a, b):
        torch.testing.assert_close(fa, fb)


def test_backbone_frozen_stages_and_gradients():
    backbone = _tiny_backbone(frozen_stages=2)
    backbone.train()
    assert not backbone.layers[1].attn.qkv.weight.requires_grad
    assert backbone.layers[2].attn.qkv.weight.requires_grad
    assert not backbone.layers[0].training
    feats = backbone(torch.randn(1, 3, 56, 56))
    sum(f.sum() for f in feats).backward()
    assert backbone.layers[3].ffn.layers[1].weight.grad.abs().sum() > 0
    assert backbone.reassemble_resizes[0].weight.grad.abs().sum() > 0
    assert backbone.layers[1].attn.qkv.weight.grad is None  # frozen


def test_bad_backbone_args():
    with pytest.raises(AssertionError):
        _tiny_backbone(readout_type='mean')
    with pytest.raises(AssertionError):
        MODELS.build(
            dict(
                type='DINOv2MultiLevel',
                arch=TINY_ARCH,
                out_indices=(3, 1, 0, 2),
                out_channels=(8, 8, 8, 8)))


# --------------------------------------------------------------------------
# full toy student: loss() and predict()
# --------------------------------------------------------------------------
def _toy_student_cfg(patch_size):
    cfg = _load_cfg('student_dinov2-tiny_dpt_toy.py')
    if patch_size == 14:  # same stride bookkeeping as the paper (3.5..28)
        strides = [3.5, 7, 14, 28]
        cfg.model.backbone.patch_size = 14
        cfg.model.data_preprocessor.pad_size_divisor = 28
        cfg.model.panoptic_head.strides = strides
        cfg.model.panoptic_head.pixel_decoder.strides = strides
    return cfg


@pytest.mark.parametrize('patch_size', [8, 14])
def test_toy_student_loss_and_predict(patch_size):
    torch.manual_seed(0)
    cfg = _toy_student_cfg(patch_size)
    model = MODELS.build(cfg.model)
    model.init_weights()
    divisor = cfg.model.data_preprocessor.pad_size_divisor

    packed = demo_mm_inputs(
        batch_size=2,
        image_shapes=[(3, 96, 192), (3, 90, 170)],
        num_items=[3, 2],
        num_classes=8,
        with_mask=True)
    model.train()
    data = model.data_preprocessor(packed, True)
    pad_h, pad_w = data['inputs'].shape[-2:]
    assert pad_h % divisor == 0 and pad_w % divisor == 0
    losses = model(**data, mode='loss')
    # 2 decoder layers + the initial prediction -> d0, d1 and final losses
    for name in ['loss_cls', 'loss_mask', 'loss_dice', 'd0.loss_cls',
                 'd1.loss_dice']:
        assert name in losses, name
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.layers[0].attn.qkv.weight.grad.abs().sum() > 0
    assert model.backbone.reassemble_projects[0].weight.grad.abs().sum() > 0

    model.eval()
    packed = demo_mm_inputs(
        batch_size=2,
        image_shapes=[(3, 96, 192), (3, 90, 170)],
        num_classes=8,
        with_mask=True)
    with torch.no_grad():
        data = model.data_preprocessor(packed, False)
        results = model(**data, mode='predict')
    assert len(results) == 2
    for res, (h, w) in zip(results, [(96, 192), (90, 170)]):
        inst = res.pred_instances
        assert len(inst) == cfg.model.test_cfg.max_per_image
        assert tuple(inst.masks.shape[-2:]) == (h, w)
        assert inst.labels.max() < 8


# --------------------------------------------------------------------------
# checkpoint converter (official DINOv2 ViT-S/14 names)
# --------------------------------------------------------------------------
def _official_vits14_state_dict(chunked=False):
    """Random tensors with dinov2_vits14_pretrain.pth's names and shapes."""
    g = torch.Generator().manual_seed(1)
    C, F = 384, 1536

    def r(*shape):
        return torch.randn(*shape, generator=g)

    sd = OrderedDict(
        cls_token=r(1, 1, C),
        pos_embed=r(1, 1 + 37 * 37, C),
        mask_token=r(1, C))
    sd['patch_embed.proj.weight'] = r(C, 3, 14, 14)
    sd['patch_embed.proj.bias'] = r(C)
    for i in range(12):
        p = f'blocks.{i // 4}.{i}.' if chunked else f'blocks.{i}.'
        sd[p + 'norm1.weight'] = r(C)
        sd[p + 'norm1.bias'] = r(C)
        sd[p + 'attn.qkv.weight'] = r(3 * C, C)
        sd[p + 'attn.qkv.bias'] = r(3 * C)
        sd[p + 'attn.proj.weight'] = r(C, C)
        sd[p + 'attn.proj.bias'] = r(C)
        sd[p + 'ls1.gamma'] = r(C)
        sd[p + 'norm2.weight'] = r(C)
        sd[p + 'norm2.bias'] = r(C)
        sd[p + 'mlp.fc1.weight'] = r(F, C)
        sd[p + 'mlp.fc1.bias'] = r(F)
        sd[p + 'mlp.fc2.weight'] = r(C, F)
        sd[p + 'mlp.fc2.bias'] = r(C)
        sd[p + 'ls2.gamma'] = r(C)
    sd['norm.weight'] = r(C)
    sd['norm.bias'] = r(C)
    return sd


DPT_READOUT_PREFIXES = ('readout_projects.', 'reassemble_projects.',
                        'reassemble_resizes.')


@pytest.fixture(scope='module')
def paper_backbone_cfg():
    cfg = _load_cfg('student_dinov2-s_dpt-52m.py')
    backbone = copy.deepcopy(cfg.model.backbone)
    backbone.init_cfg = None
    return backbone


def test_converter_loads_into_paper_backbone(paper_backbone_cfg):
    converter = _load_converter()
    official = _official_vits14_state_dict()
    converted = converter.convert_dinov2(official)
    assert 'mask_token' not in converted

    backbone = MODELS.build(paper_backbone_cfg)
    backbone.init_weights()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    result = backbone.load_state_dict(converted, strict=False)
    assert result.unexpected_keys == []
    # only the new DPT read-out modules are not in the checkpoint
    assert result.missing_keys
    assert all(k.startswith(DPT_READOUT_PREFIXES)
               for k in result.missing_keys), result.missing_keys
    vit_keys = [k for k in before if not k.startswith(DPT_READOUT_PREFIXES)]
    assert set(vit_keys) == set(converted)
    after = backbone.state_dict()
    unchanged = [k for k in vit_keys if torch.equal(after[k], before[k])]
    assert unchanged == []
    for k in vit_keys:
        torch.testing.assert_close(after[k], converted[k], rtol=0, atol=0)
    # values land in the right places
    torch.testing.assert_close(backbone.layers[7].attn.qkv.weight,
                               official['blocks.7.attn.qkv.weight'])
    torch.testing.assert_close(backbone.layers[3].attn.gamma1.weight,
                               official['blocks.3.ls1.gamma'])
    torch.testing.assert_close(backbone.layers[11].ffn.gamma2.weight,
                               official['blocks.11.ls2.gamma'])
    torch.testing.assert_close(backbone.layers[0].ffn.layers[0][0].weight,
                               official['blocks.0.mlp.fc1.weight'])
    torch.testing.assert_close(backbone.layers[5].ffn.layers[1].bias,
                               official['blocks.5.mlp.fc2.bias'])
    torch.testing.assert_close(backbone.patch_embed.projection.weight,
                               official['patch_embed.proj.weight'])
    torch.testing.assert_close(backbone.ln1.weight, official['norm.weight'])
    torch.testing.assert_close(backbone.pos_embed, official['pos_embed'])

    # chunked checkpoints and wrapped / prefixed ones give the same result
    chunked = converter.convert_dinov2(
        dict(model={
            'module.' + k: v
            for k, v in _official_vits14_state_dict(chunked=True).items()
        }))
    assert list(chunked) == list(converted)
    assert all(torch.equal(chunked[k], converted[k]) for k in converted)
    with pytest.raises(KeyError):
        converter.convert_dinov2({'register_tokens': torch.zeros(1, 4, 384)})


def test_pretrained_init_cfg_paths(paper_backbone_cfg, tmp_path):
    """Converted official ckpt (no prefix) and mmpretrain's DINOv2 ckpt
    (``backbone.*``) both load through ``init_cfg``."""
    converter = _load_converter()
    converted = converter.convert_dinov2(_official_vits14_state_dict())
    key = 'layers.4.attn.qkv.weight'

    official_path = str(tmp_path / 'dinov2_vits14_mmcast.pth')
    torch.save(dict(state_dict=converted), official_path)
    cfg = copy.deepcopy(paper_backbone_cfg)
    cfg.init_cfg = dict(type='Pretrained', checkpoint=official_path)
    backbone = MODELS.build(cfg)
    backbone.init_weights()
    torch.testing.assert_close(backbone.state_dict()[key], converted[key])

    # mmpretrain VisionTransformer checkpoint layout, keys 'backbone.*'
    mmpretrain_sd = {'backbone.' + k: v.neg() for k, v in converted.items()}
    mmpretrain_path = str(tmp_path / 'vit-small-p14_dinov2-pre.pth')
    torch.save(dict(state_dict=mmpretrain_sd, meta=dict()), mmpretrain_path)
    cfg.init_cfg = dict(
        type='Pretrained', checkpoint=mmpretrain_path, prefix='backbone.')
    backbone = MODELS.build(cfg)
    backbone.init_weights()
    torch.testing.assert_close(backbone.state_dict()[key], -converted[key])


def test_converter_cli(tmp_path):
    import subprocess
    import sys
    src = str(tmp_path / 'official.pth')
    dst = str(tmp_path / 'out' / 'converted.pth')
    sd = _official_vits14_state_dict()
    torch.save(sd, src)
    script = osp.join(REPO_ROOT, 'tools', 'model_converters',
                      'dinov2_to_mmcast.py')
    subprocess.run([sys.executable, script, src, dst, '--prefix', 'backbone.'],
                   check=True, capture_output=True)
    out = torch.load(dst, map_location='cpu', weights_only=True)['state_dict']
    assert len(out) == len(sd) - 1  # mask_token dropped
    assert torch.equal(out['backbone.layers.2.attn.proj.weight'],
                       sd['blocks.2.attn.proj.weight'])


# --------------------------------------------------------------------------
# configs and parameter counts (build only, no forward)
# --------------------------------------------------------------------------
def test_paper_student_parameter_count():
    """Parameter breakdown of the default (paper-size, 52M) student.

    DINOv2 ViT-S/14 (with the 37x37 pos_embed) 22.06 M + DPT readout
    projection 1.18 M + reassemble 6.16 M = backbone 29.40 M; DPT pixel
    decoder (256 ch) 11.91 M; Mask2Former decoder (256-d, 9 layers, FFN
    1024) 9.48 M + queries/level embed/cls/mask MLP 0.25 M. Total 51.04 M,
    the published 52 M within 2 %.
    """
    cfg = _load_cfg('student_dinov2-s_dpt-52m.py')
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    backbone = _num_params(model.backbone)
    vit = sum(p.numel() for n, p in model.backbone.named_parameters()
              if not n.startswith(DPT_READOUT_PREFIXES))
    pixel_decoder = _num_params(model.panoptic_head.pixel_decoder)
    transformer_decoder = _num_params(
        model.panoptic_head.transformer_decoder)
    total = _num_params(model)
    print(f'\nViT-S/14 {vit / 1e6:.2f}M, backbone {backbone / 1e6:.2f}M, '
          f'DPT {pixel_decoder / 1e6:.2f}M, decoder '
          f'{transformer_decoder / 1e6:.2f}M, total {total / 1e6:.2f}M')
    assert vit == 22_056_192  # == mmpretrain dinov2-small
    assert backbone == pytest.approx(29.40e6, rel=0.005)
    assert pixel_decoder == pytest.approx(11.91e6, rel=0.005)
    assert transformer_decoder == pytest.approx(9.48e6, rel=0.005)
    assert total == pytest.approx(51.04e6, rel=0.005)
    assert total == pytest.approx(52e6, rel=0.05)


@pytest.mark.parametrize('name, expected', [
    # spec width: 384-d DPT fusion and decoder (FFN 2048)
    ('student_dinov2-s_dpt-79m.py', 79.07e6),
    ('student_dinov2-s_fpn.py', 43.43e6),
    ('student_r50_msdeform.py', 44.00e6),
    ('student_dinov2-tiny_dpt_toy.py', 1.26e6),
])
def test_student_configs_build(name, expected):
    cfg = _load_cfg(name)
    if cfg.model.backbone.get('init_cfg'):
        cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert model.panoptic_head.num_things_classes == 8
    assert model.panoptic_head.num_stuff_classes == 0
    assert cfg.model.test_cfg.instance_on and not cfg.model.test_cfg.panoptic_on
    assert _num_params(model) == pytest.approx(expected, rel=0.01)
