# Copyright (c) mmcast contributors. All rights reserved.
"""Where a training step's time goes: the supervised, stage-2 and Guided
Distillation steps broken into their parts with ``torch.profiler``.

Each part is a method of the real model wrapped, on the instance, in a
``torch.profiler.record_function`` scope (nothing in the package changes):
the photometric strong view, the backbone on the weak view (with gradient)
and on the strong view (without), the head's forward (pixel decoder and
transformer decoder), the Hungarian matching (``get_targets``), the
set-prediction losses (matching included), L_pxl's projection and its
sampling + loss, Guided Distillation's teacher, the backward and the
optimiser step. Stage 2 has no EMA (its teacher labelled D_u offline);
Guided Distillation's EMA runs in a hook after the step, not in it. On
CUDA each part is synchronised at its end, so the parts are device time.
Times are inclusive: a part nested in another (matching in the losses)
is counted in both.

It also counts the operators one step runs with few and with many
instances per image: a loop over the instances in Python would add
operators per instance (``ops / extra instance`` ≈ 0 means none).

    python tools/benchmark/step_breakdown.py --dataset cityscapes \\
        --device cpu --repeats 2 --warmup 1
    # the toy's stage-2 step
    python tools/benchmark/step_breakdown.py --config toy
"""
import argparse
import collections
import contextlib
import copy
import os.path as osp
import sys
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from real_size_step import (CONFIG_DIR, config_crop, load_config,  # noqa: E402
                            optim_cfg)
from stage_overhead import merge_branches  # noqa: E402

from mmcast.models.layers.photometric_strong_view import \
    PhotometricStrongView  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from mmdet.testing import demo_mm_inputs  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402

STEPS = ('supervised', 'stage 2', 'guided distillation')
TOY = dict(supervised='toy/mask2former_r18_1xb4-1500it_toy.py',
           distill='distill_toy.py',
           gd='guided_distillation/guided-distillation_r18_toy.py')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='cityscapes',
                        choices=['cityscapes', 'ade20k', 'coco'])
    parser.add_argument('--config', choices=['real', 'toy'], default='real',
                        help='the real-size configs of --dataset, or the toy')
    parser.add_argument('--device', default=None)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--shape', type=int, nargs=2, default=None,
                        help='training crop H W (default: the config\'s)')
    parser.add_argument('--instances', type=int, nargs=2, default=[3, 30],
                        metavar=('FEW', 'MANY'),
                        help='instances per image of the two op counts')
    parser.add_argument('--steps', nargs='+', choices=STEPS, default=STEPS,
                        help='the steps to break down')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--num-queries', type=int, default=None)
    parser.add_argument('--num-points', type=int, default=None)
    parser.add_argument('--cpu-autocast', default=None)
    return parser.parse_args(argv)


def batch(num_images: int, shape, instances: int, branch: Optional[str],
          seed: int) -> dict:
    """A collated batch of ``num_images`` images with ``instances`` masks
    each (under ``branch`` for a multi-branch model)."""
    torch.manual_seed(seed)
    data = demo_mm_inputs(num_images, [[3, *shape]] * num_images,
                          num_items=[instances] * num_images, num_classes=8,
                          with_mask=True)
    if branch is None:
        return data
    return dict(inputs={branch: data['inputs']},
                data_samples={branch: data['data_samples']})


def _wrap(owner, method: str, label: Callable[[], str], sync: bool) -> None:
    original = getattr(owner, method)

    def scoped(*args, **kwargs):
        with torch.profiler.record_function(label()):
            out = original(*args, **kwargs)
            if sync:
                torch.cuda.synchronize()
            return out

    setattr(owner, method, scoped)


def instrument(model: torch.nn.Module, optim_wrapper, sync: bool) -> None:
    """Wrap the parts of ``model``'s step in named profiler scopes."""
    det = getattr(model, 'student', model)
    head = det.panoptic_head
    fixed = lambda name: (lambda: name)  # noqa: E731
    for view in [m for m in model.modules()
                 if isinstance(m, PhotometricStrongView)]:
        _wrap(view, 'forward', fixed('strong view'), sync)
    _wrap(det.backbone, 'forward',
          lambda: 'backbone, weak view' if torch.is_grad_enabled() else
          'backbone, strong view (no grad)', sync)
    _wrap(head, 'forward', fixed('head forward (decoders)'), sync)
    _wrap(head, 'get_targets', fixed('matching (get_targets)'), sync)
    _wrap(head, 'loss_by_feat', fixed('set-prediction losses'), sync)
    if getattr(head, 'with_pixel_contrast', False):
        _wrap(head.projection_head, 'forward', fixed('L_pxl projection'),
              sync)
        _wrap(head.loss_pixel_contrast, 'forward',
              fixed('L_pxl sampling + loss'), sync)
    teacher = getattr(model, 'teacher', None)
    if isinstance(teacher, torch.nn.Module) and det is not teacher:
        _wrap(teacher, '_forward', fixed('teacher forward'), sync)
    _wrap(optim_wrapper, 'backward', fixed('backward'), sync)
    _wrap(optim_wrapper, 'step', fixed('optimizer step'), sync)


def profile_step(cfg: Config, data: dict, args: argparse.Namespace,
                 device: str, few_many: Tuple[dict, dict]) -> Dict:
    """Per-part milliseconds of one step (mean over ``args.repeats``) and
    the operator counts of a step on the two batches of ``few_many``."""
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device).train()
    optim_wrapper = build_optim_wrapper(model, optim_cfg(cfg, device))
    autocast = (contextlib.nullcontext() if device.startswith('cuda') or
                not args.cpu_autocast else
                torch.autocast('cpu', dtype=getattr(torch, args.cpu_autocast)))

    def step(batch_data: dict) -> None:
        with autocast:
            model.train_step(copy.deepcopy(batch_data), optim_wrapper)

    counts = []
    for part in few_many:  # before the scopes: operators only
        step(part)
        with torch.profiler.profile() as prof:
            step(part)
        counts.append(sum(1 for e in prof.events()
                          if e.name.startswith('aten::')))
    instrument(model, optim_wrapper, sync=device.startswith('cuda'))
    for _ in range(args.warmup):
        step(data)
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.repeats):
            with torch.profiler.record_function('step'):
                step(data)
                if device.startswith('cuda'):
                    torch.cuda.synchronize()
    totals: Dict[str, float] = collections.defaultdict(float)
    for event in prof.events():
        if event.name in PART_NAMES:
            totals[event.name] += event.cpu_time_total / 1000
    parts = {name: totals[name] / args.repeats for name in PART_NAMES
             if name in totals}
    return dict(parts_ms=parts, ops=counts)


PART_NAMES = ('step', 'strong view', 'backbone, weak view',
              'backbone, strong view (no grad)', 'head forward (decoders)',
              'matching (get_targets)', 'set-prediction losses',
              'L_pxl projection', 'L_pxl sampling + loss', 'teacher forward',
              'backward', 'optimizer step')


def configs(args: argparse.Namespace) -> Dict[str, Config]:
    """The supervised, stage-2 and Guided Distillation configs."""
    if args.config == 'toy':
        names = TOY
    else:
        ds = args.dataset
        names = dict(supervised=f'supervised_student_{ds}.py',
                     distill=f'distill_{ds}.py',
                     gd=f'guided_distillation/guided-distillation_dinov2-s_'
                     f'{ds}.py')
    found = {}
    for step_name, key in zip(STEPS, ('supervised', 'distill', 'gd')):
        if step_name in args.steps and \
                osp.exists(osp.join(CONFIG_DIR, names[key])):
            found[step_name] = load_config(names[key], args)
    return found


def run(args: argparse.Namespace) -> Dict[str, Dict]:
    """Every step's breakdown and operator counts."""
    register_all_modules()
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    found = configs(args)
    shape = args.shape or (config_crop(next(iter(found.values())))
                           if args.config == 'real' else [96, 192])
    few, many = args.instances
    results = {}
    for name, cfg in found.items():
        if name == 'supervised':
            make = lambda n: batch(args.batch_size, shape, n, None, 1)  # noqa
        else:
            ratio = cfg.train_dataloader.sampler.get('source_ratio', [1, 1])
            n_sup = max(1, round(args.batch_size * ratio[0] / sum(ratio)))
            make = lambda n, s=n_sup: merge_branches(  # noqa: E731
                batch(s, shape, n, 'sup', 1),
                batch(args.batch_size - s, shape, n, 'unsup', 2))
        print(f'[{name}] {args.warmup + args.repeats + 2} steps on '
              f'{device} ...', file=sys.stderr, flush=True)
        results[name] = profile_step(cfg, make(few), args, device,
                                     (make(few), make(many)))
    results['_meta'] = dict(device=device, shape=list(shape),
                            batch_size=args.batch_size,
                            threads=torch.get_num_threads(),
                            instances=[few, many])
    return results


def format_report(results: Dict[str, Dict]) -> str:
    """One Markdown table: part × step, ms and share of the step."""
    meta = results['_meta']
    steps = [s for s in STEPS if s in results]
    lines = [f'{meta["device"]}, {meta["threads"]} threads, '
             f'{meta["batch_size"]} images of {meta["shape"][0]}×'
             f'{meta["shape"][1]} per step, inclusive ms per step '
             '(share of the step)', '',
             '| part | ' + ' | '.join(steps) + ' |',
             '|---|' + '---|' * len(steps)]
    for part in PART_NAMES:
        cells = []
        for s in steps:
            ms = results[s]['parts_ms'].get(part)
            total = results[s]['parts_ms']['step']
            cells.append('—' if ms is None else
                         f'{ms:.0f} ({100 * ms / total:.0f} %)')
        if any(c != '—' for c in cells):
            lines.append(f'| {part} | ' + ' | '.join(cells) + ' |')
    few, many = meta['instances']
    extra = (many - few) * meta['batch_size']
    lines.append(
        f'| operators per step, {few} → {many} instances per image | ' +
        ' | '.join(f'{results[s]["ops"][0]} → {results[s]["ops"][1]} '
                   f'({(results[s]["ops"][1] - results[s]["ops"][0]) / extra:.2f}'
                   ' per extra instance)' for s in steps) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        print(format_report(run(args)), end='')
    except KeyboardInterrupt:
        print('interrupted: nothing measured is kept', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
