# Copyright (c) mmcast contributors. All rights reserved.
"""The student's deployment path on CUDA: the static predict in fp16 makes
the host wait for the device nowhere (``torch.cuda.set_sync_debug_mode``
raises on any synchronisation, no exemption), compiles as one graph and
runs captured in a CUDA graph (inductor's ``reduce-overhead`` and an
explicit ``torch.cuda.CUDAGraph``) with the eager outputs, batches give
each image its batch-1 instances (fp32), a CUDA ``.pt2`` package gives the
eager instances through ``PT2Inferencer``, and the deployment benchmark runs
every variant with its profile."""
import copy
import json
import os.path as osp

import torch

from conftest import REPO_ROOT, load_script
from host_sync import no_host_sync
from test_static_deploy import (CANVAS, STUDENT, assert_same_instances,
                                build_student, predictor_of,
                                write_student_checkpoint)

from mmcast.deploy import compile_predictor
from mmcast.deploy.pt2_package import example_inputs


def _cuda_inputs(batch_size=4, seed=0):
    images, sizes = example_inputs(CANVAS, batch_size, 'cuda', seed=seed)
    return images, sizes


def _half_predictor():
    return predictor_of(build_student().cuda(), torch.float16)


def _assert_close_half(ref, out):
    """fp16 outputs of two kernel choices: the sorted scores within fp16
    precision, the same masks but for pixels near a zero logit."""
    torch.testing.assert_close(out[0].sort(dim=1).values,
                               ref[0].sort(dim=1).values, rtol=0,
                               atol=5e-3)
    agree = (out[2] == ref[2]).float().mean()
    assert agree >= 0.99


def test_static_predict_never_waits_for_the_device():
    predictor = _half_predictor()
    images, sizes = _cuda_inputs()
    with torch.no_grad():
        predictor(images, sizes)  # warm-up: lazy initialisations
        torch.cuda.synchronize()
        with no_host_sync():
            out = predictor(images, sizes)
    assert all(o.is_cuda for o in out)
    assert out[0].dtype == torch.float32 and out[2].dtype == torch.bool


def test_compiled_cuda_graph_gives_the_eager_outputs():
    predictor = _half_predictor()
    images, sizes = _cuda_inputs()
    graphed = compile_predictor(copy.deepcopy(predictor), cuda_graph=True)
    with torch.no_grad():
        ref = predictor(images, sizes)
        for _ in range(3):  # recorded, then replayed
            out = [o.clone() for o in graphed(images, sizes)]
    _assert_close_half(ref, out)
    torch._dynamo.reset()


def test_explicit_cuda_graph_replays_new_images():
    predictor = _half_predictor()
    static_images, static_sizes = _cuda_inputs(seed=0)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(stream):
        for _ in range(2):
            predictor(static_images, static_sizes)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        static_out = predictor(static_images, static_sizes)
    images, sizes = _cuda_inputs(seed=5)
    static_images.copy_(images)
    static_sizes.copy_(sizes)
    graph.replay()
    with torch.no_grad():
        ref = predictor(images, sizes)
    assert_same_instances(ref, static_out, score_atol=1e-3, min_iou=0.99)


def test_batches_give_each_image_its_batch_1_instances_on_cuda(monkeypatch):
    """In fp32 without TF32: each batch size picks other kernels, and in
    fp16 their rounding alone flipped 1.5 % of the random-weight student's
    mask pixels (logits near 0) on an H200; fp32 leaves batching itself to
    be checked, to the IoU of :func:`assert_same_instances`."""
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', False)
    monkeypatch.setattr(torch.backends.cuda.matmul, 'allow_tf32', False)
    predictor = predictor_of(build_student().cuda())
    images, sizes = _cuda_inputs(batch_size=8)
    with torch.no_grad():
        alone = [predictor(images[i:i + 1], sizes[i:i + 1])
                 for i in range(8)]
        for batch_size in (2, 4, 8):
            for start in range(0, 8, batch_size):
                out = predictor(images[start:start + batch_size],
                                sizes[start:start + batch_size])
                for i in range(batch_size):
                    assert_same_instances(alone[start + i],
                                          [o[i:i + 1] for o in out],
                                          score_atol=1e-4, min_iou=0.99)


def test_cuda_pt2_package_gives_the_eager_instances(tmp_path):
    from mmcast.deploy import PT2Inferencer
    from mmcast.deploy import export_pt2
    from mmcast.deploy.pt2_package import eager_reference
    checkpoint = str(tmp_path / 'student.pth')
    model = write_student_checkpoint(checkpoint)
    out = export_pt2(STUDENT, checkpoint, str(tmp_path / 'student.pt2'),
                     CANVAS, precision='float16', device='cuda',
                     max_batch=8)
    assert out['metadata']['device'] == 'cuda'
    inferencer = PT2Inferencer(out['file'], device='cuda',
                               sha256=out['sha256'])
    images, sizes = _cuda_inputs()
    reference = eager_reference(model.cuda(), out['metadata'])
    with torch.no_grad():
        _assert_close_half(reference(images, sizes),
                           inferencer.forward(images, sizes))


def test_deploy_benchmark_on_cuda(tmp_path):
    benchmark = load_script(
        osp.join(REPO_ROOT, 'tools', 'benchmark', 'inference.py'))
    out = tmp_path / 'deploy.json'
    assert benchmark.main([
        '--device', 'cuda', '--deploy', '--profile', '--models',
        'student 52M', '--shapes', '256', '512', '--batch-sizes', '1', '4',
        '--repeats', '3', '--warmup', '2', '--json-out', str(out)]) == 0
    report = json.loads(out.read_text())
    variants = {(r['variant'], r['batch']) for r in report['deploy']}
    assert variants == {(v, b) for b in (1, 4) for v in (
        'eager fp32', 'eager half', 'half+compile',
        'half+compile+cuda graph', '.pt2', 'onnxruntime')}
    assert all(r['images_per_s'] > 0 and r['tflops'] > 0
               for r in report['deploy'])
    assert all(p['top'] for p in report['profiles'])
