# Copyright (c) mmcast contributors. All rights reserved.
"""What a higher instance capacity costs: the toy student's train step and
predict at 20 / 100 / 200 / 300 queries, side by side in one run.

Each model is the toy R-18 student (``configs/mmcast/
supervised_student_toy.py``) given the capacity by
:func:`mmcast.apis.pipeline.instance_capacity.with_capacity`, the options
``tools/cast_pipeline.py --max-instances`` uses (queries and
``test_cfg.max_per_image`` follow it), built with the same seed. The batch
is the dense toy world's (:mod:`mmcast.toy.cells`: 50 to 200
touching cells an image), the same for every capacity: a train step
(forward, Hungarian matching, backward, AdamW update) on ``--batch-size``
images, and ``predict`` (fusion head included) on one. Median seconds of
``--repeats`` rounds after ``--warmup``, the capacities taking turns in
every round; only the ratios of one run compare::

    python tools/benchmark/query_cost.py
    # a CPU shared with other programs: the CPU time of one thread
    OMP_NUM_THREADS=1 python tools/benchmark/query_cost.py --clock cpu \\
        --queries 20 100 200 300 --shape 96 192 --batch-size 4 --repeats 7
"""
import argparse
import copy
import logging
import statistics
import time
from typing import Dict, List, Optional

import numpy as np
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.structures import InstanceData

import mmcast  # noqa: F401  (registers mmcast's modules)
from mmcast.apis.pipeline.instance_capacity import with_capacity
from mmcast.toy.cells import render_cells_scene

CONFIG = 'configs/mmcast/supervised_student_toy.py'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--queries', type=int, nargs='+',
                        default=[20, 100, 200, 300])
    parser.add_argument('--batch-size', type=int, default=4,
                        help='train images per step (the toy configs: 4)')
    parser.add_argument('--shape', type=int, nargs=2, default=[96, 192],
                        metavar=('H', 'W'), help='image size (the toy\'s)')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--clock', choices=('wall', 'cpu'), default='wall',
        help='wall-clock seconds, or the CPU seconds of this process (with '
        'OMP_NUM_THREADS=1 on a CPU: its time on an idle core, whatever '
        'else the machine runs)')
    return parser.parse_args(argv)


def cells_batch(batch_size: int, shape: List[int], seed: int = 0) -> dict:
    """A collated batch of dense toy-world images (uint8 (3, H, W)) with
    their cells as ground truth (labels 0 / 1, bitmap masks, boxes)."""
    inputs, samples = [], []
    for i in range(batch_size):
        scene = render_cells_scene(*shape, np.random.default_rng(seed + i))
        masks = np.stack([inst.mask for inst in scene.instances])
        ys, xs = [np.array([np.nonzero(m.any(axis))[0][[0, -1]]
                            for m in masks]) for axis in (1, 0)]
        sample = DetDataSample(metainfo=dict(
            img_shape=tuple(shape), ori_shape=tuple(shape),
            scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            labels=torch.tensor([int(inst.label == 'rider')
                                 for inst in scene.instances]),
            masks=BitmapMasks(masks.astype(np.uint8), *shape),
            bboxes=torch.from_numpy(np.stack(
                [xs[:, 0], ys[:, 0], xs[:, 1] + 1, ys[:, 1] + 1],
                1).astype(np.float32)))
        inputs.append(torch.from_numpy(
            np.ascontiguousarray(scene.image.transpose(2, 0, 1))))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def timed(fn, device: str, clock: str = 'wall') -> float:
    """Seconds of ``fn()``, timed to its end on ``device``: wall-clock, or
    the CPU time of this process (``clock='cpu'``)."""
    now = time.process_time if clock == 'cpu' else time.perf_counter
    start = now()
    fn()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return now() - start


class Capacity:
    """The model of ``cfg`` at the capacity ``queries``, its optimizer, and
    its train step and predict on a batch."""

    def __init__(self, cfg: Config, queries: int, batch: dict,
                 device: str) -> None:
        torch.manual_seed(0)
        self.model = MODELS.build(with_capacity(cfg, queries).model).to(
            device)
        self.optim = build_optim_wrapper(self.model,
                                         copy.deepcopy(cfg.optim_wrapper))
        self.batch = batch
        self.one = dict(inputs=batch['inputs'][:1],
                        data_samples=batch['data_samples'][:1])

    def train_step(self) -> None:
        self.model.train()
        self.model.train_step(copy.deepcopy(self.batch), self.optim)

    def predict(self) -> None:
        self.model.eval()
        with torch.no_grad():
            self.model.test_step(copy.deepcopy(self.one))


def measure(cfg: Config, batch: dict,
            args: argparse.Namespace) -> List[Dict[str, float]]:
    """The median train step and predict times of ``cfg``'s model at each
    capacity of ``args.queries``, and its parameters. The capacities take
    turns in every round, so that a load that changes over the run weighs
    on all of them alike."""
    models = [Capacity(cfg, q, batch, args.device) for q in args.queries]
    times = [dict(train=[], predict=[]) for _ in models]
    for i in range(args.warmup + args.repeats):
        for model, measured in zip(models, times):
            for name in ('train', 'predict'):
                fn = model.train_step if name == 'train' else model.predict
                seconds = timed(fn, args.device, args.clock)
                if i >= args.warmup:
                    measured[name].append(seconds)
    return [
        dict(queries=m.model.panoptic_head.num_queries,
             max_per_image=m.model.test_cfg['max_per_image'],
             params=sum(p.numel() for p in m.model.parameters()) / 1e6,
             train=statistics.median(t['train']),
             predict=statistics.median(t['predict']))
        for m, t in zip(models, times)
    ]


def format_table(rows: List[Dict[str, float]]) -> str:
    """The markdown table, times relative to the first row."""
    base = rows[0]
    lines = ['| queries (= max_per_image) | parameters (M) | train step '
             '(s) | × | predict (s/image) | × |',
             '|---|---|---|---|---|---|']
    for r in rows:
        lines.append(
            f'| {r["queries"]} | {r["params"]:.2f} | {r["train"]:.3f} | '
            f'{r["train"] / base["train"]:.2f} | {r["predict"]:.3f} | '
            f'{r["predict"] / base["predict"]:.2f} |')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> List[Dict[str, float]]:
    args = parse_args(argv)
    register_all_modules()
    # (the optimizer's per-parameter settings, once per capacity)
    MMLogger.get_instance('mmengine').setLevel(logging.WARNING)
    cfg = Config.fromfile(args.config)
    batch = cells_batch(args.batch_size, args.shape)
    per_image = [len(s.gt_instances) for s in batch['data_samples']]
    rows = measure(cfg, batch, args)
    print(f'device: {args.device}, threads: {torch.get_num_threads()}, '
          f'{args.clock} clock, {args.config}, batch {args.batch_size} '
          f'dense toy images {args.shape[0]}x{args.shape[1]} with '
          f'{min(per_image)}-{max(per_image)} instances each, median of '
          f'{args.repeats}')
    print(format_table(rows))
    return rows


if __name__ == '__main__':
    main()
