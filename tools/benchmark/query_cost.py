# Copyright (c) mmcast contributors. All rights reserved.
"""What a higher instance capacity costs: the toy student's train step and
predict at 20 / 100 / 200 / 300 queries, side by side in one run.

Each model is the toy R-18 student (``configs/mmcast/
supervised_student_toy.py``) given the capacity by
:func:`mmcast.apis.instance_capacity.with_capacity`, the options
``tools/cast_pipeline.py --max-instances`` uses (queries and
``test_cfg.max_per_image`` follow it), built with the same seed. The batch
is the dense toy world's (:mod:`mmcast.datasets.toy_cells`: 50 to 200
touching cells an image), the same for every capacity: a train step
(forward, Hungarian matching, backward, AdamW update) on ``--batch-size``
images, and ``predict`` (fusion head included) on one. Median seconds of
``--repeats`` after ``--warmup``; only the ratios of one run compare::

    python tools/benchmark/query_cost.py
    python tools/benchmark/query_cost.py --queries 20 100 200 300 \\
        --shape 96 192 --batch-size 4 --repeats 5
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
from mmcast.apis.instance_capacity import with_capacity
from mmcast.datasets.toy_cells import render_cells_scene

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


def median_seconds(fn, repeats: int, warmup: int, device: str) -> float:
    """Median seconds of ``fn()`` (each timed to its end on ``device``)."""
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        fn()
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(cfg: Config, queries: int, batch: dict,
            args: argparse.Namespace) -> Dict[str, float]:
    """The train step and predict times of ``cfg``'s model at the capacity
    ``queries``, and its parameters."""
    torch.manual_seed(0)
    model = MODELS.build(with_capacity(cfg, queries).model).to(args.device)
    optim = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))

    def train_step() -> None:
        model.train()
        model.train_step(copy.deepcopy(batch), optim)

    one = dict(inputs=batch['inputs'][:1],
               data_samples=batch['data_samples'][:1])

    def predict() -> None:
        model.eval()
        with torch.no_grad():
            model.test_step(copy.deepcopy(one))

    return dict(
        queries=model.panoptic_head.num_queries,
        max_per_image=model.test_cfg['max_per_image'],
        params=sum(p.numel() for p in model.parameters()) / 1e6,
        train=median_seconds(train_step, args.repeats, args.warmup,
                             args.device),
        predict=median_seconds(predict, args.repeats, args.warmup,
                               args.device))


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
    rows = [measure(cfg, q, batch, args) for q in args.queries]
    print(f'device: {args.device}, threads: {torch.get_num_threads()}, '
          f'{args.config}, batch {args.batch_size} dense toy images '
          f'{args.shape[0]}x{args.shape[1]} with {min(per_image)}-'
          f'{max(per_image)} instances each, median of {args.repeats}')
    print(format_table(rows))
    return rows


if __name__ == '__main__':
    main()
