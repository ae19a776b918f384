# Copyright (c) mmcast contributors. All rights reserved.
"""Cost of a CAST stage-2 / Guided Distillation iteration relative to a
supervised iteration.

Both run the same toy R-18 student on the same total batch, side by side in
one process: the supervised iteration is a stock Mask2Former step on B
labeled images; the stage-2 iteration is a ``CASTDistiller`` step on B
labeled + pseudo-labeled images, mixed as the config's sampler mixes them
(``source_ratio``; 1 + 3 in distill_toy.py), with the contrastive term
(strong view through the backbone without gradient, projection head, L_pxl).
With offline pseudo-labels the frozen teacher costs nothing per step.
Target: ≤ 1.35×. The Guided Distillation iteration (``--gd-config``) mixes
the batch alike; its teacher (same architecture) labels the unlabeled images
in the step (forward without gradient + GD's rule) and the student trains on
their strong view. Its random teacher keeps every query not classed "no
object" (rule thresholds 0): the most pseudo-instances a step can get.

    python tools/benchmark/stage_overhead.py --batch-size 4 --repeats 20
"""
import argparse
import copy
import statistics
import time

import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

import mmcast  # noqa: F401


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default='configs/mmcast/distill_toy.py')
    parser.add_argument(
        '--gd-config',
        default='configs/mmcast/guided_distillation/guided-distillation_r18_toy.py')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--shape', type=int, nargs=2, default=[96, 192])
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--device', default='cpu',
                        help='cpu or cuda (each step is timed to its end)')
    return parser.parse_args()


def packed_batch(batch_size: int, shape, branch: str = None, seed: int = 0) -> dict:
    """A collated batch of ``batch_size`` images with 3 masks each."""
    torch.manual_seed(seed)
    data = demo_mm_inputs(batch_size, [[3, *shape]] * batch_size,
                          num_items=[3] * batch_size, num_classes=8,
                          with_mask=True)
    if branch is None:
        return data
    return dict(inputs={branch: data['inputs']},
                data_samples={branch: data['data_samples']})


def merge_branches(a: dict, b: dict) -> dict:
    """Collated multi-branch data with the branches of ``a`` and ``b``."""
    return {k: {**a[k], **b[k]} for k in ('inputs', 'data_samples')}


def time_steps(model, data: dict, optim_cfg, repeats: int, warmup: int,
               device: torch.device) -> float:
    """Median seconds of ``model.train_step`` (forward, backward, update)
    on ``device`` (the data preprocessor moves the batch there)."""
    model.to(device)
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(optim_cfg))
    model.train()
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        model.train_step(copy.deepcopy(data), optim_wrapper)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    distiller_cfg = copy.deepcopy(cfg.model)
    distiller_cfg.teacher_checkpoint = None  # architecture only: not used per step
    supervised_cfg = copy.deepcopy(cfg.model.student)
    supervised_cfg.type = 'Mask2Former'
    supervised_cfg.pop('strong_view')
    head = supervised_cfg.panoptic_head
    head.type = 'FP32LossMask2FormerHead'
    for key in ('contrast_level', 'projection_head', 'loss_pixel_contrast'):
        head.pop(key)

    torch.manual_seed(0)
    supervised = MODELS.build(supervised_cfg)
    distiller = MODELS.build(distiller_cfg)
    # Labeled / pseudo-labeled images per batch as the config's sampler mixes
    # them (MultiSourceSampler.source_ratio).
    ratio = cfg.train_dataloader.sampler.get('source_ratio', [1, 1])
    n_sup = max(1, round(args.batch_size * ratio[0] / sum(ratio)))
    n_unsup = args.batch_size - n_sup
    sup_data = packed_batch(args.batch_size, args.shape)
    semi_data = merge_branches(
        packed_batch(n_sup, args.shape, 'sup', seed=1),
        packed_batch(n_unsup, args.shape, 'unsup', seed=2))

    t_sup = time_steps(supervised, sup_data, cfg.optim_wrapper, args.repeats,
                       args.warmup, device)
    t_cast = time_steps(distiller, semi_data, cfg.optim_wrapper, args.repeats,
                        args.warmup, device)
    gd_cfg = Config.fromfile(args.gd_config)
    gd_model_cfg = copy.deepcopy(gd_cfg.model)
    gd_model_cfg.teacher_checkpoint = None
    gd_model_cfg.semi_train_cfg.pseudo_label_rule = dict(
        score_thr=0.0, min_mask_area=0.0)
    torch.manual_seed(0)
    guided = MODELS.build(gd_model_cfg)
    t_gd = time_steps(guided, semi_data, gd_cfg.optim_wrapper, args.repeats,
                      args.warmup, device)
    print(f'device: {device}, threads: {torch.get_num_threads()}, batch {args.batch_size} '
          f'images {args.shape[0]}x{args.shape[1]}, median of {args.repeats}')
    print('| iteration | s/iter |\n|---|---|')
    print(f'| supervised (stock Mask2Former, {args.batch_size} labeled) | {t_sup:.3f} |')
    print(f'| CAST stage 2 ({n_sup} labeled + {n_unsup} '
          f'pseudo-labeled, L_pxl) | {t_cast:.3f} |')
    print(f'| Guided Distillation ({n_sup} labeled + {n_unsup} unlabeled, '
          f'teacher forward + GD rule, strong view) | {t_gd:.3f} |')
    print(f'stage-2 / supervised = {t_cast / t_sup:.2f}x (target <= 1.35x)')
    print(f'Guided Distillation / supervised = {t_gd / t_sup:.2f}x')


if __name__ == '__main__':
    main()
