# Copyright (c) mmcast contributors. All rights reserved.
"""Faster eager inference keeps the predictions (``mmcast.apis``).

Fused attention switches Mask2Former's decoder attention (MMCV's
``MultiheadAttention`` asks ``nn.MultiheadAttention`` for its weights, which
forces the unfused path) to PyTorch's fused kernel, and the DINOv2 backbone
already runs the fused kernel; channels-last and autocast keep the
instances; the inference benchmark runs end to end at toy size.
"""
import json
import os.path as osp

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmcast  # noqa: F401  (registers the modules)
from conftest import REPO_ROOT, load_script
from mmcast.deploy import (fuse_attention, inference_autocast,
                           prepare_for_inference)
from mmcast.models.layers import FusedMultiheadAttention

register_all_modules()
TOY = 'configs/mmcast/toy/mask2former_r18_1xb4-1500it_toy.py'
DINOV2_TOY = 'configs/mmcast/_base_/models/student_dinov2-tiny_dpt_toy.py'


def _model(config=TOY):
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    with DefaultScope.overwrite_default_scope('mmdet'):
        torch.manual_seed(0)
        return MODELS.build(cfg.model).eval()


def _predict(model, shape=(64, 96)):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, *shape, generator=gen) * 255
    samples = []
    for _ in range(2):
        sample = DetDataSample()
        sample.set_metainfo(dict(img_shape=shape, ori_shape=shape,
                                 scale_factor=(1.0, 1.0)))
        samples.append(sample)
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(inputs=list(images), data_samples=samples), False)
        return [s.pred_instances
                for s in model.predict(data['inputs'], data['data_samples'])]


def _mask_iou(a, b):
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float().clamp(min=1)
    return inter / union


def _assert_close(ref, out, score_atol=1e-4, min_iou=0.99):
    for r, o in zip(ref, out):
        assert len(r) == len(o) > 0
        assert torch.equal(r.labels, o.labels)
        torch.testing.assert_close(r.scores, o.scores, rtol=0,
                                   atol=score_atol)
        assert _mask_iou(r.masks, o.masks).min() >= min_iou


def test_fused_attention_runs_the_fused_kernel_with_the_same_results(
        monkeypatch):
    model = _model()
    ref = _predict(model)
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', counting)
    _predict(model)
    assert not calls  # stock: MMCV asks for weights, the unfused path
    switched = fuse_attention(model)
    # 3 decoder layers x (self-attention + masked cross-attention)
    assert switched == 6
    assert all(type(m) is not torch.nn.MultiheadAttention
               for m in model.modules())
    out = _predict(model)
    assert len(calls) == switched  # each attention once for the batch
    _assert_close(ref, out)


def test_dinov2_backbone_takes_the_fused_kernel():
    """mmpretrain binds ``scaled_dot_product_attention`` at build time:
    every attention of the DINOv2 student is PyTorch's fused one."""
    model = _model(DINOV2_TOY)
    attentions = [m for m in model.backbone.modules()
                  if hasattr(m, 'scaled_dot_product_attention')]
    assert len(attentions) == len(model.backbone.layers) > 0
    for attention in attentions:
        assert attention.scaled_dot_product_attention is \
            F.scaled_dot_product_attention


def test_channels_last_keeps_the_predictions():
    model = _model()
    ref = _predict(model)
    prepare_for_inference(model, channels_last=True)
    assert model.backbone.conv1.weight.is_contiguous(
        memory_format=torch.channels_last)
    assert isinstance(model.panoptic_head.transformer_decoder.layers[0]
                      .self_attn.attn, FusedMultiheadAttention)
    _assert_close(ref, _predict(model))


def test_autocast_outputs_float32_results():
    """bf16 on CPU; the lean head's results stay fp32, the best scores
    within bf16's precision (5 %, or 0.01 of a score under 0.2)."""
    model = _model()
    ref = _predict(model)
    with inference_autocast('cpu'):
        out = _predict(model)
    for r, o in zip(ref, out):
        assert o.scores.dtype == torch.float32 and o.masks.dtype == torch.bool
        assert len(o) == len(r)
        top_ref = r.scores.sort(descending=True).values[:10]
        top_out = o.scores.sort(descending=True).values[:10]
        torch.testing.assert_close(top_out, top_ref, rtol=0.05, atol=0.01)
    with inference_autocast('cpu'):
        assert torch.get_autocast_dtype('cpu') == torch.bfloat16
        assert torch.is_autocast_enabled('cpu')
    with inference_autocast('cpu', torch.float32):
        assert not torch.is_autocast_enabled('cpu')


def test_benchmark_runs_every_variant(tmp_path, capsys):
    benchmark = load_script(
        osp.join(REPO_ROOT, 'tools', 'benchmark', 'inference.py'))
    out = tmp_path / 'inference.json'
    assert benchmark.main([
        '--device', 'cpu', '--shapes', '64', '128', '--repeats', '1',
        '--warmup', '0', '--num-queries', '10', '--models', 'student 52M',
        '--json-out', str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    variants = [r['variant'] for r in report['rows']]
    assert variants == list(benchmark.MASK2FORMER_VARIANTS) + ['onnxruntime']
    for row in report['rows'][:-1]:
        assert row['seconds'] > 0
        assert 0 <= row['postprocess_share'] < 1
        assert f"| {row['variant']} |" in printed
    onnx = report['rows'][-1]
    assert onnx['seconds'] > 0 and onnx['providers'][0] == \
        'CPUExecutionProvider'
    # the provider it ran on is printed (ONNX Runtime falls back silently)
    assert '| onnxruntime (CPUExecutionProvider) |' in printed
    assert {(r['faster'], r['slower']) for r in report['ratios']} == {
        ('student 52M lean', 'student 52M stock'),
        ('student 52M onnxruntime', 'student 52M lean+fused')}
