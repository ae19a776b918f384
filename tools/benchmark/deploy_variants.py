# Copyright (c) mmcast contributors. All rights reserved.
"""The student's deployment variants, side by side
(``tools/benchmark/inference.py --deploy``).

Every variant runs the same static predict
(:class:`mmcast.deploy.StaticMask2FormerPredictor`: uint8 images on the
padded canvas to the kept instances, post-processing on the device) on the
same synthetic batch:

* ``eager fp32``; ``eager half``: weights cast to fp16 on CUDA, bf16 on
  the CPU (a CPU without fp16 matrix units runs fp16 in slow reference
  kernels: the report says which);
* ``half+compile``: the whole predict compiled as one graph
  (``torch.compile(fullgraph=True)``, inductor);
* ``half+compile+cuda graph`` (CUDA only): the same, captured in a CUDA
  graph (``mode='reduce-overhead'``);
* ``.pt2``: the predict exported and compiled ahead of time (AOTInductor),
  in half precision, run from the package;
* ``onnxruntime``: the network exported to ONNX (fp32 on the CPU, fp16 on
  CUDA) and run by ONNX Runtime, the lean post-processing in PyTorch on
  its logits (as :class:`mmcast.deploy.ONNXInferencer`).

The static variants run with each of ``mask_formats``: ``packed`` (the
deployment default, 8 pixels a byte) and ``bool`` (the full-resolution
bool masks), side by side. For each, at each batch size: seconds per
batch, images/s, the share of post-processing (the variant's post-processing timed alone on the same
logits: eager, compiled or host; not separable inside a ``.pt2``), the
achieved TFLOP/s (2 × the network's MACs, ``tools/analysis/model_cost.py``,
× images ÷ seconds) and, with ``profile``, the top operators by device
time (``torch.profiler``; ONNX Runtime's own kernels are not seen by it).
"""
import copy
import os.path as osp
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                            'analysis'))
from model_cost import measure_flops  # noqa: E402

from mmcast.deploy import (build_static_predictor,  # noqa: E402
                           compile_predictor)
from mmcast.deploy.pt2_package import (example_inputs,  # noqa: E402
                                       export_static_program)

DEPLOY_VARIANTS = ('eager fp32', 'eager half', 'half+compile',
                   'half+compile+cuda graph', '.pt2', 'onnxruntime')


def half_dtype(device: str) -> torch.dtype:
    """fp16 on CUDA, bf16 on the CPU."""
    return torch.float16 if device.startswith('cuda') else torch.bfloat16


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def _median_seconds(fn: Callable[[], object], warmup: int, repeats: int,
                    device: str) -> float:
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def top_operators(fn: Callable[[], object], device: str,
                  top: int) -> List[Dict]:
    """The ``top`` operators of one call of ``fn`` by self device time
    (CUDA kernels' time on a GPU, CPU time on the CPU)."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    cuda = device.startswith('cuda')
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        fn()
        _sync(device)
    events = prof.key_averages()
    key = 'self_device_time_total' if cuda else 'self_cpu_time_total'
    total = sum(getattr(e, key) for e in events) or 1.0
    ranked = sorted(events, key=lambda e: -getattr(e, key))[:top]
    return [dict(op=e.key, ms=getattr(e, key) / 1e3,
                 share=getattr(e, key) / total, calls=e.count)
            for e in ranked]


class _Variant:
    """A variant's full call and its post-processing alone."""

    def __init__(self, run: Callable, post: Optional[Callable],
                 compile_s: float = 0.0) -> None:
        self.run, self.post, self.compile_s = run, post, compile_s


def _static_variant(name: str, model, canvas, device: str,
                    batch: Tuple, tmp: str, max_batch: int,
                    mask_format: str) -> _Variant:
    """``eager *``, ``*compile*`` and ``.pt2`` on ``batch`` (images,
    sizes) with masks in ``mask_format``; the ``.pt2`` package is exported
    once for batches up to ``max_batch`` and reused."""
    dtype = torch.float32 if name == 'eager fp32' else half_dtype(device)
    predictor = build_static_predictor(copy.deepcopy(model), canvas, dtype,
                                       mask_format=mask_format)
    images, sizes = batch
    with torch.no_grad():
        logits = predictor.network(predictor.preprocess(images, sizes))
    post_fn = predictor.postprocess
    full_fn, compile_s = predictor, 0.0
    if 'compile' in name:
        cuda_graph = 'cuda graph' in name
        full_fn = compile_predictor(predictor, cuda_graph=cuda_graph)
        post_fn = torch.compile(
            predictor.postprocess, fullgraph=True, dynamic=False,
            mode='reduce-overhead' if cuda_graph else None)
        start = time.perf_counter()
        with torch.no_grad():
            full_fn(images, sizes)
            post_fn(*logits, sizes)
        _sync(device)
        compile_s = time.perf_counter() - start
    elif name == '.pt2':
        start = time.perf_counter()
        path = osp.join(
            tmp, f'student_{canvas[0]}x{canvas[1]}_{mask_format}.pt2')
        if not osp.exists(path):
            program = export_static_program(predictor, max_batch=max_batch)
            torch._inductor.aoti_compile_and_package(program,
                                                     package_path=path)
        full_fn = torch._inductor.aoti_load_package(path)
        compile_s = time.perf_counter() - start
        post_fn = None

    def run():
        with torch.no_grad():
            return full_fn(images, sizes)

    def post():
        with torch.no_grad():
            return post_fn(*logits, sizes)

    return _Variant(run, post if post_fn is not None else None, compile_s)


def _onnx_variant(cfg_file: str, checkpoint: str, canvas, device: str,
                  batch: Tuple, tmp: str, num_things: int,
                  capacity: int) -> _Variant:
    """The network in ONNX Runtime, the lean post-processing in PyTorch."""
    import onnxruntime as ort

    from mmcast.deploy import export_onnx
    from mmcast.models.seg_heads import lean_instance_results
    cuda = device.startswith('cuda')
    path = osp.join(tmp, f'student_{canvas[0]}x{canvas[1]}.onnx')
    start = time.perf_counter()
    if not osp.exists(path):
        export_onnx(cfg_file, checkpoint, path, input_shape=canvas,
                    verify=False, precision='float16' if cuda else 'float32')
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(
        path, sess_options=options,
        providers=(['CUDAExecutionProvider', 'CPUExecutionProvider']
                   if cuda else ['CPUExecutionProvider']))
    compile_s = time.perf_counter() - start
    images, sizes = batch
    x = images.permute(0, 3, 1, 2).float().cpu().numpy()
    logits = [torch.from_numpy(a).to(device)
              for a in session.run(None, {'images': x})]

    def post_of(cls_logits, mask_logits):
        return [lean_instance_results(
            c, m, num_things, batch_input_shape=canvas,
            img_shape=tuple(s.tolist()), ori_shape=tuple(s.tolist()),
            max_per_image=capacity)
            for c, m, s in zip(cls_logits, mask_logits, sizes.cpu())]

    def run():
        out = session.run(None, {'images': x})
        return post_of(*[torch.from_numpy(a).to(device) for a in out])

    variant = _Variant(run, lambda: post_of(*logits), compile_s)
    variant.providers = session.get_providers()
    return variant


def deploy_rows(model, cfg_file: str, checkpoint: str, shape, args,
                tmp: str) -> Tuple[List[Dict], List[Dict]]:
    """The variants of ``args.deploy_variants`` at each batch size of
    ``args.batch_sizes``: table rows and (with ``args.profile``) profiles.

    Args:
        model: The student (fp32, eval, on ``args.device``).
        cfg_file, checkpoint: Its config and weights (for ONNX export).
        shape: The image (H, W); the canvas is it padded to the divisor.
    """
    device = args.device
    divisor = int(model.data_preprocessor.pad_size_divisor)
    canvas = tuple(-(-s // divisor) * divisor for s in shape)
    macs = measure_flops(copy.deepcopy(model).cpu(), canvas)['flops']
    capacity = min(model.test_cfg.get('max_per_image', 100),
                   model.panoptic_head.num_queries *
                   model.panoptic_fusion_head.num_things_classes)
    rows, profiles = [], []
    for batch_size in args.batch_sizes:
        batch = example_inputs(canvas, batch_size, device)
        batch[1][:] = torch.tensor(canvas)  # every image fills the canvas
        for name, mask_format in _runs(args):
            if 'cuda graph' in name and not device.startswith('cuda'):
                continue
            torch._dynamo.reset()
            if name == 'onnxruntime':
                variant = _onnx_variant(
                    cfg_file, checkpoint, canvas, device, batch, tmp,
                    model.panoptic_fusion_head.num_things_classes, capacity)
            else:
                variant = _static_variant(name, model, canvas, device, batch,
                                          tmp, max(args.batch_sizes),
                                          mask_format)
            seconds = _median_seconds(variant.run, args.warmup, args.repeats,
                                      device)
            post = None if variant.post is None else _median_seconds(
                variant.post, args.warmup, args.repeats, device) / seconds
            row = dict(variant=name, mask_format=mask_format,
                       shape=list(shape), batch=batch_size,
                       seconds=seconds, images_per_s=batch_size / seconds,
                       postprocess_share=post,
                       tflops=2 * macs * batch_size / seconds / 1e12,
                       compile_s=variant.compile_s, gmacs_per_image=macs /
                       1e9, precision=_precision(name, device))
            if getattr(variant, 'providers', None):
                row['providers'] = variant.providers
            rows.append(row)
            print(format_deploy_row(row), flush=True)
            if args.profile:
                profiles.append(dict(
                    variant=name, mask_format=mask_format, batch=batch_size,
                    shape=list(shape),
                    top=top_operators(variant.run, device, args.profile_top)))
    return rows, profiles


def _runs(args) -> List[Tuple[str, Optional[str]]]:
    """(variant, mask format) pairs: each static variant with each of
    ``args.mask_formats``; ONNX Runtime (logits out) once."""
    return [(name, None if name == 'onnxruntime' else mask_format)
            for name in args.deploy_variants
            for mask_format in (args.mask_formats[:1]
                                if name == 'onnxruntime'
                                else args.mask_formats)]


def _precision(name: str, device: str) -> str:
    if name == 'eager fp32' or (name == 'onnxruntime'
                                and not device.startswith('cuda')):
        return 'fp32'
    return {torch.float16: 'fp16',
            torch.bfloat16: 'bf16'}[half_dtype(device)]


def format_deploy_row(row: Dict) -> str:
    share = row['postprocess_share']
    variant = row['variant']
    if row.get('providers'):
        variant += f" ({row['providers'][0]})"
    if row.get('mask_format'):
        variant += f", {row['mask_format']} masks"
    return (f"| {variant} | {row['precision']} | {row['shape'][0]}×"
            f"{row['shape'][1]} | {row['batch']} | {row['seconds']:.3f} | "
            f"{row['images_per_s']:.2f} | "
            f"{'—' if share is None else f'{100 * share:.1f} %'} | "
            f"{row['tflops']:.3f} | {row['compile_s']:.0f} |")


def format_deploy_report(rows: List[Dict], profiles: List[Dict]) -> str:
    """The deployment table and the profiles as markdown."""
    lines = ['| variant | precision | input | batch | s / batch | images/s | '
             'post-processing | TFLOP/s | compile / export s |',
             '|---|---|---|---|---|---|---|---|---|']
    lines += [format_deploy_row(r) for r in rows]
    for prof in profiles:
        masks = f", {prof['mask_format']} masks" if prof.get(
            'mask_format') else ''
        lines += ['', f"top operators, {prof['variant']}{masks}, batch "
                  f"{prof['batch']}, {prof['shape'][0]}×{prof['shape'][1]}:",
                  '| operator | ms | share | calls |', '|---|---|---|---|']
        lines += [f"| {op['op']} | {op['ms']:.2f} | "
                  f"{100 * op['share']:.1f} % | {op['calls']} |"
                  for op in prof['top']]
    return '\n'.join(lines)
