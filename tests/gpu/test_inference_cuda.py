# Copyright (c) mmcast contributors. All rights reserved.
"""Inference on CUDA: the lean fusion head predicts the stock head's
instances on the device, the speed-ups (fused attention, channels-last,
torch.compile, fp16 autocast) keep the toy model's predictions, and the
inference benchmark runs every variant on the GPU."""
import json
import os.path as osp

import torch

from conftest import REPO_ROOT, load_script
from test_inference_speedups import _model, _predict
from test_lean_fusion_head import _assert_same, _lean, _logits, _stock


def test_lean_head_on_cuda_is_the_stock_head():
    cls, masks = _logits(8, 100)
    ref = _stock(cls.cuda(), masks.cuda(), 8, 100, True)
    out = _lean(cls.cuda(), masks.cuda(), 8, 100, True)
    for r, o in zip(ref, out):
        assert o.masks.is_cuda and o.bboxes.is_cuda and o.scores.is_cuda
        _assert_same(r.cpu(), o.cpu())


def _predict_with_logits(model):
    """The predictions (on the host) and the class logits (B, Q, C + 1) and
    mask logits (B, Q, h, w) the fusion head made them from."""
    seen = []
    predict = model.panoptic_fusion_head.predict

    def recording(mask_cls, mask_pred, *args, **kwargs):
        seen.append((mask_cls.float().cpu(), mask_pred.float().cpu()))
        return predict(mask_cls, mask_pred, *args, **kwargs)

    model.panoptic_fusion_head.predict = recording
    try:
        results = [r.cpu() for r in _predict(model)]
    finally:
        del model.panoptic_fusion_head.predict
    return results, seen[0]


def test_speedups_keep_the_predictions_on_cuda(monkeypatch):
    """fp32 without TF32 (cuDNN allows it by default): channels-last and
    compile change the kernels and their summation order, not the maths,
    so the logits agree to float32 rounding. Masks are compared by their
    logits: a random toy model has pixels whose logit is within rounding of
    0, and a binarised mask flips there."""
    from mmcast.deploy import inference_autocast, prepare_for_inference
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    monkeypatch.setattr(torch.backends.cuda.matmul, 'allow_tf32', False)
    model = _model().cuda()
    ref, (ref_cls, ref_masks) = _predict_with_logits(model)
    prepare_for_inference(model, channels_last=True, compile=True)
    out, (cls, masks) = _predict_with_logits(model)
    torch.testing.assert_close(cls, ref_cls, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(masks, ref_masks, rtol=1e-3, atol=1e-3)
    for r, o in zip(ref, out):
        assert len(r) == len(o) > 0
        assert torch.equal(r.labels, o.labels)
        torch.testing.assert_close(o.scores, r.scores, rtol=0, atol=1e-3)
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
