# Copyright (c) mmcast contributors. All rights reserved.
"""Real-size CAST on a GPU: step time, peak memory and images/s.

Every model is built from the real-size configs with random weights (nothing
is loaded or downloaded) and fed synthetic batches; it runs on CUDA when
present, with the configs' ``AmpOptimWrapper`` (fp16) for training and fp16
autocast for inference. Measured side by side in one process:

1. **train step** at ``--batch-size`` images per GPU (the configs' 2) and the
   configs' crop (512×1024 for Cityscapes): the labels-only student
   (``supervised_student_<ds>.py``) on labeled images vs the stage-2
   ``CASTDistiller`` (``distill_<ds>.py``) on the same number of images split
   as its sampler splits them (1 labeled + 1 pseudo-labeled), with L_pxl and
   the strong view; median seconds, the ratio (target ≤ 1.15× with AMP) and
   the peak GPU memory of each; and, where the dataset has one, the Guided
   Distillation step (``guided_distillation/guided-distillation_dinov2-s_
   <ds>.py``: the same split, the teacher's forward + GD's rule in the step,
   the student on the strong view of the unlabeled images);
2. **student inference** (``predict``, batch 1, at ``--infer-shape``,
   1024×2048 by default): images/s of the paper's 52M student (the stage
   configs' default) and of the 79M spec-width variant;
3. **teacher labelling** (``predict``, batch 1, same shape): images/s of the
   Mask2Former Swin-L teacher (``adapt_teacher_<ds>.py``) and of the
   box-prompted Grounding-DINO-L + SAM 2.1-L teacher
   (``teachers/grounding_dino_sam2_<ds>.py``; it needs its local BERT folder
   and SAM 2 checkpoint, else the row says which file is missing), and the
   student / teacher speed ratio (paper: 13.0 vs 2.85 FPS).

Only ratios measured in the same run compare; absolute numbers hold for the
device printed with them. On a CPU the script runs too (no AMP: the
optimiser of the config in a plain ``OptimWrapper``; ``--cpu-autocast``
wraps steps and inference in CPU autocast instead) — useful at reduced
sizes to check that it works, not for the numbers::

    python tools/benchmark/real_size_step.py --dataset cityscapes \\
        --json-out work_dirs/real_size_step.json
    # CPU check at reduced size
    python tools/benchmark/real_size_step.py --device cpu --shape 64 128 \\
        --infer-shape 64 128 --num-queries 10 --num-points 256 \\
        --repeats 1 --warmup 0
"""
import argparse
import contextlib
import copy
import json
import os
import os.path as osp
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from stage_overhead import merge_branches, packed_batch  # noqa: E402

import mmcast  # noqa: E402,F401  (registers mmcast modules)
from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402

CONFIG_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'mmcast')
# the student model files: the paper's 52M one (the stage configs' default)
# and the 79M spec-width variant
STUDENTS = {
    'student_52m': '_base_/models/student_dinov2-s_dpt-52m.py',
    'student_79m': '_base_/models/student_dinov2-s_dpt-79m.py',
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='cityscapes',
                        choices=['cityscapes', 'ade20k', 'coco'])
    parser.add_argument('--device', default=None,
                        help='cuda / cpu (default: cuda if available)')
    parser.add_argument('--batch-size', type=int, default=2,
                        help='images per GPU per training step')
    parser.add_argument('--shape', type=int, nargs=2, default=None,
                        help='training crop H W (default: the config\'s)')
    parser.add_argument('--infer-shape', type=int, nargs=2,
                        default=[1024, 2048], help='inference image H W')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--num-queries', type=int, default=None,
                        help='override every Mask2Former head (CPU checks)')
    parser.add_argument('--num-points', type=int, default=None,
                        help='override train_cfg.num_points (CPU checks)')
    parser.add_argument('--cpu-autocast', choices=['float16', 'bfloat16'],
                        default=None, help='on CPU: run under this autocast')
    parser.add_argument('--skip', nargs='*', default=[],
                        choices=['train', 'student', 'teacher', 'gdino-sam2'],
                        help='sections (or the box-prompted teacher) to skip')
    parser.add_argument('--json-out', default=None)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- configs
def load_config(name: str, args: argparse.Namespace) -> Config:
    """A real-size config with the reduced-size overrides of ``args``."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    model = cfg.model
    dets = {'CASTDistiller': ('student', ),
            'GuidedDistiller': ('student', 'teacher')}.get(model.type)
    for det in [model[k] for k in dets] if dets else [model]:
        head = det.get('panoptic_head')
        if head is not None and args.num_queries:
            head.num_queries = args.num_queries
            # top-k over queries x classes must not ask for more
            det.test_cfg.max_per_image = min(det.test_cfg.max_per_image,
                                             args.num_queries)
        if det.get('train_cfg') and args.num_points:
            det.train_cfg.num_points = args.num_points
    if model.type == 'CASTDistiller':
        # offline pseudo-labels: the frozen teacher costs nothing per step
        model.teacher = model.teacher_checkpoint = None
    if model.type == 'GuidedDistiller':
        model.teacher_checkpoint = None  # its architecture, random weights
    return cfg


def config_crop(cfg: Config) -> List[int]:
    """The training crop (H, W) of a stage config's RandomCrop."""
    loader = cfg.train_dataloader
    datasets = loader.dataset.get('datasets', [loader.dataset])
    for transform in datasets[0].pipeline:
        if transform.type == 'RandomCrop':
            w, h = transform.crop_size
            return [h, w]
    raise KeyError('no RandomCrop in the train pipeline')


def optim_cfg(cfg: Config, device: str) -> ConfigDict:
    """The config's optimiser wrapper; MMEngine's AMP one needs a GPU."""
    optim = copy.deepcopy(cfg.optim_wrapper)
    if device == 'cpu' and optim.type == 'AmpOptimWrapper':
        optim.type = 'OptimWrapper'
        optim.pop('loss_scale', None)
    return optim


# ---------------------------------------------------------------- timing
def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def measure(fn: Callable[[], None], repeats: int, warmup: int,
            device: str) -> Dict[str, float]:
    """Median seconds of ``fn`` and the peak GPU memory (GiB) it reached."""
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() / 2**30
            if device.startswith('cuda') else None)
    return dict(seconds=statistics.median(times), peak_gib=peak)


def autocast_context(args: argparse.Namespace, device: str):
    """fp16 autocast on CUDA; ``--cpu-autocast`` on CPU; else nothing."""
    if device.startswith('cuda'):
        return torch.autocast('cuda', dtype=torch.float16)
    if args.cpu_autocast:
        return torch.autocast('cpu', dtype=getattr(torch, args.cpu_autocast))
    return contextlib.nullcontext()


def train_step_time(cfg: Config, data: dict, args: argparse.Namespace,
                    device: str) -> Dict[str, float]:
    """Forward, backward and update of the config's model on ``data``."""
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device).train()
    optim_wrapper = build_optim_wrapper(model, optim_cfg(cfg, device))

    def step() -> None:
        # AmpOptimWrapper autocasts inside train_step; on CPU the optional
        # autocast is ours.
        with (contextlib.nullcontext() if device.startswith('cuda') else
              autocast_context(args, device)):
            model.train_step(copy.deepcopy(data), optim_wrapper)

    result = measure(step, args.repeats, args.warmup, device)
    del model, optim_wrapper
    return result


def images_per_second(cfg: Config, args: argparse.Namespace,
                      device: str) -> Dict[str, float]:
    """Batch-1 ``predict`` (preprocessing and post-processing included)."""
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device).eval()
    batch = packed_batch(1, args.infer_shape)
    batch['data_samples'][0].set_metainfo(
        dict(text=cfg.model.get('classes')))  # box-prompted teacher prompts

    @torch.no_grad()
    def predict() -> None:
        with autocast_context(args, device):
            data = model.data_preprocessor(copy.deepcopy(batch), False)
            model(**data, mode='predict')

    result = measure(predict, args.repeats, args.warmup, device)
    result['images_per_s'] = 1.0 / result['seconds']
    result['params_m'] = sum(p.numel() for p in model.parameters()) / 1e6
    del model
    return result


def missing_teacher_files(cfg: Config) -> List[str]:
    """Local files the box-prompted teacher reads that are not there."""
    paths = [cfg.model.detector_cfg_options['language_model.name'],
             cfg.model.sam2.checkpoint]
    return [p for p in paths if p and not osp.exists(p)]


# ---------------------------------------------------------------- main
def run(args: argparse.Namespace) -> Dict:
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    ds = args.dataset
    register_all_modules()
    report: Dict = dict(
        dataset=ds, device=device, batch_size=args.batch_size,
        device_name=(torch.cuda.get_device_name() if device.startswith('cuda')
                     else f'CPU, {torch.get_num_threads()} threads'),
        precision=('fp16 AMP' if device.startswith('cuda') else
                   args.cpu_autocast or 'fp32'),
        torch=torch.__version__)

    if 'train' not in args.skip:
        sup_cfg = load_config(f'supervised_student_{ds}.py', args)
        cast_cfg = load_config(f'distill_{ds}.py', args)
        shape = args.shape or config_crop(sup_cfg)
        ratio = cast_cfg.train_dataloader.sampler.get('source_ratio', [1, 1])
        n_sup = max(1, round(args.batch_size * ratio[0] / sum(ratio)))
        sup = train_step_time(
            sup_cfg, packed_batch(args.batch_size, shape), args, device)
        cast = train_step_time(
            cast_cfg,
            merge_branches(
                packed_batch(n_sup, shape, 'sup', seed=1),
                packed_batch(args.batch_size - n_sup, shape, 'unsup', seed=2)),
            args, device)
        report['train'] = dict(
            shape=list(shape), labeled=n_sup,
            pseudo_labeled=args.batch_size - n_sup, supervised=sup,
            stage2=cast, ratio=cast['seconds'] / sup['seconds'])
        gd_name = f'guided_distillation/guided-distillation_dinov2-s_{ds}.py'
        if osp.exists(osp.join(CONFIG_DIR, gd_name)):
            gd = train_step_time(
                load_config(gd_name, args),
                merge_branches(
                    packed_batch(n_sup, shape, 'sup', seed=1),
                    packed_batch(args.batch_size - n_sup, shape, 'unsup',
                                 seed=2)), args, device)
            report['train'].update(
                guided_distillation=gd,
                gd_ratio=gd['seconds'] / sup['seconds'])

    report['infer_shape'] = list(args.infer_shape)
    if 'student' not in args.skip:
        for key, name in STUDENTS.items():
            report[key] = images_per_second(load_config(name, args), args,
                                            device)
    if 'teacher' not in args.skip:
        report['teacher_mask2former_swin-l'] = images_per_second(
            load_config(f'adapt_teacher_{ds}.py', args), args, device)
    if 'teacher' not in args.skip and 'gdino-sam2' not in args.skip:
        name = f'teachers/grounding_dino_sam2_{ds}.py'
        if not osp.exists(osp.join(CONFIG_DIR, name)):
            report['teacher_gdino-sam2'] = dict(skipped=f'no config {name}')
        else:
            cfg = load_config(name, args)
            missing = missing_teacher_files(cfg)
            report['teacher_gdino-sam2'] = (
                dict(skipped='missing ' + ', '.join(missing)) if missing else
                images_per_second(cfg, args, device))
    return report


def format_report(r: Dict) -> str:
    """The report as the markdown table of the README."""
    lines = [f"device: {r['device_name']}, torch {r['torch']}, "
             f"{r['precision']}", '', '| measurement | value |', '|---|---|']
    if 'train' in r:
        t = r['train']
        mem = (lambda m: f", peak {m['peak_gib']:.1f} GiB"
               if m['peak_gib'] is not None else '')
        lines += [
            f"| supervised step, {r['batch_size']} labeled images "
            f"{t['shape'][0]}×{t['shape'][1]} | {t['supervised']['seconds']:.3f} s"
            f"{mem(t['supervised'])} |",
            f"| stage-2 step, {t['labeled']} labeled + {t['pseudo_labeled']} "
            f"pseudo-labeled | {t['stage2']['seconds']:.3f} s{mem(t['stage2'])} |",
            f"| stage-2 / supervised | {t['ratio']:.2f}× |"]
        if 'guided_distillation' in t:
            gd = t['guided_distillation']
            lines += [
                f"| Guided Distillation step, {t['labeled']} labeled + "
                f"{t['pseudo_labeled']} unlabeled (teacher forward in the step)"
                f" | {gd['seconds']:.3f} s{mem(gd)} |",
                f"| Guided Distillation / supervised | {t['gd_ratio']:.2f}× |"]
    h, w = r['infer_shape']
    rows = [('student_52m', 'student 52M'), ('student_79m', 'student 79M'),
            ('teacher_mask2former_swin-l', 'teacher Mask2Former Swin-L'),
            ('teacher_gdino-sam2', 'teacher Grounding-DINO-L + SAM 2.1-L')]
    for key, name in rows:
        if key not in r:
            continue
        m = r[key]
        value = (m['skipped'] if 'skipped' in m else
                 f"{m['images_per_s']:.2f} images/s ({m['params_m']:.1f}M params)")
        lines.append(f'| {name}, {h}×{w}, batch 1 | {value} |')
    for key in ('teacher_mask2former_swin-l', 'teacher_gdino-sam2'):
        if ('images_per_s' in r.get('student_52m', {})
                and 'images_per_s' in r.get(key, {})):
            lines.append(
                f"| student 52M / {key[8:]} speed | "
                f"{r['student_52m']['images_per_s'] / r[key]['images_per_s']:.2f}× |")
    return '\n'.join(lines)


def write_json(report: Dict, path: Optional[str]) -> None:
    """Write the report to ``path`` (folders made), if given."""
    if path:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(report, f, indent=2)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    # the optimiser builder logs every parameter group at INFO
    MMLogger.get_instance('real_size_step', log_level='WARNING')
    report = run(args)
    print(format_report(report))
    write_json(report, args.json_out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
