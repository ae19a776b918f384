# Copyright (c) mmcast contributors. All rights reserved.
"""Inference on CUDA: the lean fusion head predicts the stock head's
instances on the device, the speed-ups (fused attention, channels-last,
torch.compile, fp16 autocast) keep the toy model's predictions, and the
inference benchmark runs every variant on the GPU."""
import json
import os.path as osp

import torch

from conftest import REPO_ROOT, load_script
from test_inference_speedups import _assert_close, _model, _predict
from test_lean_fusion_head import _assert_same, _lean, _logits, _stock


def test_lean_head_on_cuda_is_the_stock_head():
    cls, masks = _logits(8, 100)
    ref = _stock(cls.cuda(), masks.cuda(), 8, 100, True)
    out = _lean(cls.cuda(), masks.cuda(), 8, 100, True)
    for r, o in zip(ref, out):
        assert o.masks.is_cuda and o.bboxes.is_cuda and o.scores.is_cuda
        _assert_same(r.cpu(), o.cpu())


def test_speedups_keep_the_predictions_on_cuda():
    from mmcast.apis import inference_autocast, prepare_for_inference
    model = _model().cuda()
    ref = [r.cpu() for r in _predict(model)]
    prepare_for_inference(model, channels_last=True, compile=True)
    _assert_close(ref, [r.cpu() for r in _predict(model)], score_atol=1e-3)
    with inference_autocast('cuda'):
        half = [r.cpu() for r in _predict(model)]
    for r, h in zip(ref, half):
        assert h.scores.dtype == torch.float32
        top_ref = r.scores.sort(descending=True).values[:10]
        top_half = h.scores.sort(descending=True).values[:10]
        torch.testing.assert_close(top_half, top_ref, rtol=0.05, atol=0)


def test_inference_benchmark_on_cuda(tmp_path):
    benchmark = load_script(
        osp.join(REPO_ROOT, 'tools', 'benchmark', 'inference.py'))
    out = tmp_path / 'inference.json'
    assert benchmark.main([
        '--device', 'cuda', '--shapes', '256', '512', '--repeats', '2',
        '--warmup', '1', '--models', 'student 52M', '--json-out',
        str(out)]) == 0
    report = json.loads(out.read_text())
    assert report['device'] == 'cuda'
    assert {r['variant'] for r in report['rows']} >= {
        'stock', 'lean', 'lean+fused+autocast', 'onnxruntime'}
    assert all(r['images_per_s'] > 0 for r in report['rows'])
