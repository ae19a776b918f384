# Copyright (c) mmcast contributors. All rights reserved.
"""Benchmark CAST's pixel-wise contrastive loss.

1. Time and peak memory of forward + backward of
   ``InstanceAwarePixelContrastLoss`` (chunks of 1024 anchors; per chunk
   the (chunk, M) sampling blocks and the (chunk, R, D) gathered keys, the
   keys gathered again in backward) against a naive implementation that
   gathers the (B*N, R, D) negative keys at once and lets autograd keep
   them. Both draw their negatives with the same chunked sampler, inside
   the timed region, so the difference is the logit computation alone (a
   naive unchunked sampler would need (B*N, B*N) blocks).
2. The share of L_pxl in one training iteration of the toy Mask2Former
   (``configs/mmcast/_base_/models/mask2former_r18_toy.py``: ResNet-18,
   64-channel MSDeformAttn pixel decoder with 2 encoder layers, 3 decoder
   layers, 20 queries, 8 classes, 1024 points) on a batch of two
   64x128 images, with the embeddings taken from the stride-32 feature map
   (512 channels -> PixelProjectionHead -> loss, the feature a leaf: the
   backbone backward is shared with the detector's). The strong-view row
   adds the augmentation and the no-grad backbone forward of the strong
   view, which CAST needs as well.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` minus the memory
allocated before the call (tensors allocated by the call, caching excluded).
On CPU, each case runs in a forked child process that resets its peak
resident set size (``/proc/self/clear_refs``) and reports ``VmHWM`` minus
the ``VmRSS`` before the call: the growth of the process's physical memory,
which includes allocator overhead.

Usage::

    python tools/benchmark/pixel_contrast.py [--device cpu] [--repeats 1]
"""
import argparse
import multiprocessing
import os.path as osp
import statistics
import time
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from mmcast.models.layers import PhotometricStrongView, PixelProjectionHead
from mmcast.models.losses import InstanceAwarePixelContrastLoss

NUM_QUERIES, NUM_CLASSES = 100, 8  # Mask2Former queries, Cityscapes things
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
TOY_MODEL_CONFIG = osp.join(
    osp.dirname(osp.abspath(__file__)), '..', '..',
    'configs/mmcast/_base_/models/mask2former_r18_toy.py')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='device of the benchmark')
    parser.add_argument(
        '--repeats', type=int, default=1, help='timed runs per case')
    parser.add_argument(
        '--num-negatives', type=int, default=200, help='negatives R')
    parser.add_argument('--dim', type=int, default=128, help='embedding D')
    parser.add_argument(
        '--max-naive-gib',
        type=float,
        default=4.0,
        help='skip naive cases whose gathered keys exceed this many GiB')
    parser.add_argument(
        '--skip-model',
        action='store_true',
        help='skip the tiny Mask2Former iteration share')
    return parser.parse_args()


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def make_inputs(batch: int, size: Tuple[int, int], dim: int,
                device: torch.device) -> Dict[str, torch.Tensor]:
    """Random embeddings and predictions of a fixed seed."""
    gen = torch.Generator().manual_seed(0)
    h, w = size
    z_weak = F.normalize(torch.randn(batch, dim, h, w, generator=gen), dim=1)
    z_strong = F.normalize(
        z_weak + 0.3 * torch.randn(batch, dim, h, w, generator=gen), dim=1)
    return dict(
        z_weak=z_weak.to(device).requires_grad_(),
        z_strong=z_strong.to(device),
        mask_logits=torch.randn(
            batch, NUM_QUERIES, 4 * h, 4 * w, generator=gen).to(device),
        cls_logits=torch.randn(
            batch, NUM_QUERIES, NUM_CLASSES + 1, generator=gen).to(device))


def naive_loss(loss: InstanceAwarePixelContrastLoss, z_weak: torch.Tensor,
               z_strong: torch.Tensor, mask_logits: torch.Tensor,
               cls_logits: torch.Tensor) -> torch.Tensor:
    """The same loss, gathering the (B*N, R, D) negative keys."""
    neg_idx = loss.sample_negatives(mask_logits, cls_logits, z_weak.shape[-2:])
    dim = z_weak.size(1)
    anchors = F.normalize(z_weak, dim=1).permute(0, 2, 3, 1).reshape(-1, dim)
    keys = F.normalize(
        z_strong.detach(), dim=1).permute(0, 2, 3, 1).reshape(-1, dim)
    pos = (anchors * keys).sum(-1) / loss.temperature
    neg = torch.einsum('nd,nrd->nr', anchors, keys[neg_idx]) / loss.temperature
    neg = (neg - loss.neg_margin).clamp(min=0)
    logits = torch.cat([pos[:, None], neg], dim=1)
    return loss.loss_weight * (logits.logsumexp(dim=1) - pos).mean()


def ours_loss(loss: InstanceAwarePixelContrastLoss,
              **inputs: torch.Tensor) -> torch.Tensor:
    return loss(**inputs)['loss_pxl']


def _memory_status() -> Dict[str, int]:
    with open('/proc/self/status') as f:
        fields = dict(line.split(':', 1) for line in f)
    return {k: int(fields[k].split()[0]) * 1024 for k in ('VmRSS', 'VmHWM')}


def measure(fn: Callable[..., torch.Tensor], inputs: Dict[str, torch.Tensor],
            device: torch.device, repeats: int) -> Tuple[float, int]:
    """Median seconds and peak bytes of ``fn(**inputs).backward()``."""

    def step() -> None:
        inputs['z_weak'].grad = None
        fn(**inputs).backward()
        sync(device)

    times = []
    peak = 0
    for _ in range(repeats):
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        else:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')
            base = _memory_status()['VmRSS']
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        if device.type == 'cuda':
            peak = max(peak, torch.cuda.max_memory_allocated(device) - base)
        else:
            peak = max(peak, _memory_status()['VmHWM'] - base)
    return statistics.median(times), peak


def run_case(impl: str, batch: int, size: Tuple[int, int], dim: int,
             num_negatives: int, device: torch.device,
             repeats: int) -> Tuple[float, int]:
    loss = InstanceAwarePixelContrastLoss(num_negatives=num_negatives)
    fn = ours_loss if impl == 'ours' else naive_loss
    # Warm up kernels on a tiny problem, then the measured runs.
    fn(loss, **make_inputs(2, (3, 4), dim, device)).backward()
    inputs = make_inputs(batch, size, dim, device)
    return measure(lambda **kw: fn(loss, **kw), inputs, device, repeats)


def _child(conn, *args) -> None:
    conn.send(run_case(*args))
    conn.close()


def run_case_isolated(*args) -> Tuple[float, int]:
    """:func:`run_case`; on CPU in a forked process per case, so that
    peaks do not mix."""
    device = args[5]
    if device.type == 'cuda':
        return run_case(*args)
    ctx = multiprocessing.get_context('fork')
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, ) + args)
    proc.start()
    result = parent.recv()
    proc.join()
    return result


def fmt_bytes(num: Optional[int]) -> str:
    return '-' if num is None else f'{num / 2**20:.1f} MiB'


def fmt_time(sec: Optional[float]) -> str:
    return '-' if sec is None else f'{sec * 1e3:.1f} ms'


def benchmark_loss(args: argparse.Namespace, device: torch.device) -> None:
    print(f'## L_pxl forward + backward ({device}, R={args.num_negatives}, '
          f'D={args.dim}, K={NUM_QUERIES}, C+1={NUM_CLASSES + 1}, '
          f'sampler=fused, chunk_size='
          f'{InstanceAwarePixelContrastLoss().chunk_size}, median of '
          f'{args.repeats})\n')
    print('| B | h x w | anchors | ours time | ours peak | naive time | '
          'naive peak | naive/ours time | naive/ours peak |')
    print('|---|---|---|---|---|---|---|---|---|')
    for batch in (2, 8):
        for size in ((19, 37), (64, 128)):
            anchors = batch * size[0] * size[1]
            ours = run_case_isolated('ours', batch, size, args.dim,
                                     args.num_negatives, device, args.repeats)
            gathered = anchors * args.num_negatives * args.dim * 4
            if gathered > args.max_naive_gib * 2**30:
                naive = (None, None)
                ratio = (f'skipped: keys alone {gathered / 2**30:.1f} GiB',
                         '-')
            else:
                naive = run_case_isolated('naive', batch, size, args.dim,
                                          args.num_negatives, device,
                                          args.repeats)
                ratio = (f'{naive[0] / ours[0]:.2f}',
                         f'{naive[1] / max(ours[1], 1):.1f}')
            print(f'| {batch} | {size[0]}x{size[1]} | {anchors} | '
                  f'{fmt_time(ours[0])} | {fmt_bytes(ours[1])} | '
                  f'{fmt_time(naive[0])} | {fmt_bytes(naive[1])} | '
                  f'{ratio[0]} | {ratio[1]} |')


def tiny_mask2former() -> torch.nn.Module:
    """The toy Mask2Former of :data:`TOY_MODEL_CONFIG` (8 classes)."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    return MODELS.build(Config.fromfile(TOY_MODEL_CONFIG).model)


def toy_batch(batch: int, size: Tuple[int, int], device: torch.device):
    """Normalised images and data samples with 3 random box instances."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(0)
    h, w = size
    images = torch.randn(batch, 3, h, w, generator=gen).to(device)
    samples = []
    for _ in range(batch):
        masks = torch.zeros(3, h, w, dtype=torch.uint8)
        for m in masks:
            y0 = int(torch.randint(0, h // 2, (1, ), generator=gen))
            x0 = int(torch.randint(0, w // 2, (1, ), generator=gen))
            m[y0:y0 + h // 3, x0:x0 + w // 3] = 1
        sample = DetDataSample(
            metainfo=dict(
                img_shape=size, pad_shape=size, batch_input_shape=size))
        sample.gt_instances = InstanceData(
            labels=torch.randint(0, NUM_CLASSES, (3, ),
                                 generator=gen).to(device),
            masks=BitmapMasks(masks.numpy(), h, w),
            bboxes=torch.zeros(3, 4, device=device))
        samples.append(sample)
    return images, samples


def benchmark_share(args: argparse.Namespace, device: torch.device) -> None:
    torch.manual_seed(0)
    model = tiny_mask2former().to(device).train()
    head = PixelProjectionHead(512, 128, args.dim).to(device)
    strong_view = PhotometricStrongView(MEAN, STD, seed=0).to(device)
    loss = InstanceAwarePixelContrastLoss(num_negatives=args.num_negatives)
    batch, size = 2, (64, 128)
    images, samples = toy_batch(batch, size, device)
    queries = model.panoptic_head.num_queries
    mask_logits = torch.randn(
        batch, queries, size[0] // 4, size[1] // 4, device=device)
    cls_logits = torch.randn(batch, queries, NUM_CLASSES + 1, device=device)

    def detector_step() -> None:
        model.zero_grad()
        losses = model.loss(images, samples)
        sum(v for k, v in losses.items() if 'loss' in k).backward()

    feat = model.backbone(images)[-1].detach().requires_grad_()

    def pixel_loss_step() -> None:
        with torch.no_grad():
            z_strong = head(feat)
        out = loss(head(feat), z_strong, mask_logits, cls_logits)
        out['loss_pxl'].backward()

    def strong_branch_step() -> None:
        with torch.no_grad():
            z_strong = head(model.backbone(strong_view(images))[-1])
        loss(head(feat), z_strong, mask_logits,
             cls_logits)['loss_pxl'].backward()

    # Interleaved runs, so that a noisy neighbour slows all parts alike.
    steps = dict(
        det=detector_step, pxl=pixel_loss_step, branch=strong_branch_step)
    times = {name: [] for name in steps}
    repeats = max(args.repeats, 10)
    for step in steps.values():
        step()
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - start)
    t_det, t_pxl, t_branch = (
        statistics.median(times[name]) for name in ('det', 'pxl', 'branch'))
    h, w = feat.shape[-2:]
    print(f'\n## Share of a tiny Mask2Former iteration ({device}, B={batch}, '
          f'{size[0]}x{size[1]} images, stride-32 embeddings {h}x{w}, '
          f'median of {repeats}, interleaved)\n')
    print('| part | time | share of the detector iteration |')
    print('|---|---|---|')
    print(f'| detector loss forward + backward | {fmt_time(t_det)} | 100% |')
    print(f'| L_pxl: projection head + loss, forward + backward | '
          f'{fmt_time(t_pxl)} | {100 * t_pxl / t_det:.1f}% |')
    print(f'| L_pxl + strong view (augmentation, no-grad backbone + head) | '
          f'{fmt_time(t_branch)} | {100 * t_branch / t_det:.1f}% |')


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    benchmark_loss(args, device)
    if not args.skip_model:
        benchmark_share(args, device)


if __name__ == '__main__':
    main()
