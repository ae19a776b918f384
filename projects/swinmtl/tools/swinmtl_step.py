# Copyright (c) mmcast contributors. All rights reserved.
"""Real-size SwinMTL: parameters, GFLOPs, train step time, images/s.

The model is built from a real-size SwinMTL config
(``projects/swinmtl/configs/swinmtl_swinv2-b_<dataset>.py``) with random
weights (the SimMIM encoder weights are not loaded) and fed synthetic
batches; it runs on CUDA when present. Measured in one process:

1. **size**: parameters of the generator (encoder + decoder + heads: what
   inference runs; spec ~87M) and of the critic; the generator's
   multiply-accumulates of one image at ``--flops-shape`` (the configs'
   480×480 crop by default), counted by ``torch.utils.flop_counter`` and
   given as GMACs, the unit of the usual "GFLOPs" figures (spec ~65, at an
   input size the spec does not give), split into the encoder and the
   decoder + heads (which run at full resolution);
2. **train step** at ``--batch-size`` (the configs' 4) and the training
   crop: critic step + generator step with both optimizers of the config,
   median seconds and peak GPU memory; on CUDA under AMP (both optimizer
   wrappers ``AmpOptimWrapper``, as the configs describe for ``--amp``),
   and the same step without the critic (the ``_no-critic`` ablation) for
   the critic's share;
3. **inference** (``predict`` of batch 1 at ``--infer-shape``, the test
   pipeline's 512×1024 for Cityscapes): images/s, fp16 autocast on CUDA.

Only ratios measured in the same run compare; absolute numbers hold for the
device printed with them. On a CPU it runs too (``--cpu-autocast`` wraps
the steps in CPU autocast) — at reduced sizes to check that it works, not
for the numbers::

    python projects/swinmtl/tools/swinmtl_step.py \
        --json-out swinmtl_step.json
    # CPU check at reduced size
    python projects/swinmtl/tools/swinmtl_step.py --device cpu --shape 64 64 \\
        --infer-shape 64 128 --flops-shape 64 64 --batch-size 2 \\
        --repeats 1 --warmup 0
"""
import argparse
import contextlib
import copy
import os.path as osp
import sys
from typing import Dict, List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch.utils.flop_counter import FlopCounterMode

PROJECT_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO_ROOT = osp.dirname(osp.dirname(PROJECT_ROOT))
# the repository root (the project's package, as the configs import it) and
# the timing helpers of mmcast's tools/benchmark/real_size_step.py
sys.path[:0] = [REPO_ROOT, osp.join(REPO_ROOT, 'tools', 'benchmark')]
from real_size_step import autocast_context, measure, write_json  # noqa: E402,E501

import projects.swinmtl.swinmtl  # noqa: E402,F401  (registers SwinMTL)

CONFIG_DIR = osp.join(PROJECT_ROOT, 'configs')
CONFIGS = {
    'cityscapes': 'swinmtl_swinv2-b_cityscapes.py',
    'nyuv2': 'swinmtl_swinv2-b_nyuv2.py',
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='cityscapes',
                        choices=sorted(CONFIGS))
    parser.add_argument('--device', default=None,
                        help='cuda / cpu (default: cuda if available)')
    parser.add_argument('--batch-size', type=int, default=4,
                        help='images per training step (the configs: 4)')
    parser.add_argument('--shape', type=int, nargs=2, default=None,
                        help="training crop H W (default: the config's)")
    parser.add_argument('--flops-shape', type=int, nargs=2, default=None,
                        help='H W of the MAC count (default: the crop)')
    parser.add_argument('--infer-shape', type=int, nargs=2, default=None,
                        help='inference H W (default: 512 1024 for '
                        'Cityscapes, 480 640 for NYUv2)')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--cpu-autocast', choices=['float16', 'bfloat16'],
                        default=None, help='on CPU: run under this autocast')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of both configs (with and without critic), '
        'xxx=yyy')
    parser.add_argument('--json-out', default=None)
    return parser.parse_args(argv)


def load_config(dataset: str,
                critic: bool = True,
                cfg_options: Optional[dict] = None) -> Config:
    """The real-size config, random encoder weights; ``critic=False``: the
    ``_no-critic`` ablation (one optimizer)."""
    name = CONFIGS[dataset]
    if not critic:
        name = name.replace('.py', '_no-critic.py')
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    cfg.model.backbone.init_cfg = None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def synthetic_batch(batch_size: int, shape: List[int],
                    num_classes: int) -> dict:
    """A seeded batch as the dataloader gives it: uint8 images ``(3, H,
    W)``, labels ``(1, H, W)`` and depth ``(1, H, W)`` in metres."""
    gen = torch.Generator().manual_seed(0)
    height, width = shape
    inputs, samples = [], []
    for i in range(batch_size):
        inputs.append(
            torch.randint(0, 256, (3, height, width), generator=gen,
                          dtype=torch.uint8))
        sample = SegDataSample(
            metainfo=dict(img_path=f'synthetic_{i}.png',
                          img_shape=(height, width),
                          ori_shape=(height, width)))
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, num_classes, (1, height, width), generator=gen))
        sample.gt_depth_map = PixelData(
            data=torch.rand(1, height, width, generator=gen) * 60 + 1)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def optim_cfg(cfg: Config, device: str):
    """The config's optimizer wrapper(s), ``AmpOptimWrapper`` on CUDA."""
    optim = copy.deepcopy(cfg.optim_wrapper)
    wrappers = [optim[k] for k in ('generator', 'critic') if k in optim] \
        if optim.get('constructor') == 'MultiOptimWrapperConstructor' \
        else [optim]
    if device.startswith('cuda'):
        for wrapper in wrappers:
            wrapper.update(type='AmpOptimWrapper', loss_scale='dynamic')
    return optim


def build(cfg: Config, device: str) -> torch.nn.Module:
    """The config's model, seeded random weights."""
    torch.manual_seed(0)
    return MODELS.build(cfg.model).to(device)


def model_size(cfg: Config, shape: List[int]) -> Dict[str, float]:
    """Parameters (millions) and the generator's GMACs for one image: the
    encoder's and those of the decoder and heads (full resolution)."""
    model = build(cfg, 'cpu').eval()
    generator = model.generator
    inputs = torch.zeros(1, 3, *shape)
    encoder, rest = (FlopCounterMode(display=False) for _ in range(2))
    with torch.no_grad():
        with encoder:
            features = generator.backbone(inputs)[-1]
        with rest:
            x = generator.decoder(features, inputs.shape[-2:])
            generator.seg_head(x), generator.depth_head(x)
    return dict(
        generator_params_m=sum(
            p.numel() for p in model.generator.parameters()) / 1e6,
        critic_params_m=sum(
            p.numel() for p in model.critic.parameters()) / 1e6
        if model.with_critic else 0.0,
        encoder_gmacs=encoder.get_total_flops() / 2e9,
        decoder_heads_gmacs=rest.get_total_flops() / 2e9,
        flops_shape=list(shape))


def train_step_time(cfg: Config, data: dict, args: argparse.Namespace,
                    device: str) -> Dict[str, float]:
    """Critic step + generator step of the config's model on ``data``."""
    model = build(cfg, device).train()
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


def images_per_second(cfg: Config, args: argparse.Namespace, shape: List[int],
                      device: str) -> Dict[str, float]:
    """Batch-1 ``predict`` (preprocessing included)."""
    model = build(cfg, device).eval()
    batch = synthetic_batch(1, shape, model.num_classes)

    @torch.no_grad()
    def predict() -> None:
        with autocast_context(args, device):
            model.test_step(copy.deepcopy(batch))

    result = measure(predict, args.repeats, args.warmup, device)
    result['images_per_s'] = 1.0 / result['seconds']
    del model
    return result


def run(args: argparse.Namespace) -> Dict:
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    init_default_scope('mmseg')
    cfg = load_config(args.dataset, cfg_options=args.cfg_options)
    crop = list(args.shape or cfg.model.data_preprocessor.size)
    infer = list(args.infer_shape or ([512, 1024] if args.dataset ==
                                      'cityscapes' else [480, 640]))
    report: Dict = dict(
        dataset=args.dataset, device=device, batch_size=args.batch_size,
        device_name=(torch.cuda.get_device_name() if device.startswith('cuda')
                     else f'CPU, {torch.get_num_threads()} threads'),
        precision=('fp16 AMP' if device.startswith('cuda') else
                   args.cpu_autocast or 'fp32'),
        torch=torch.__version__, shape=crop, infer_shape=infer)
    report['size'] = model_size(cfg, list(args.flops_shape or crop))
    data = synthetic_batch(args.batch_size, crop, cfg.model.seg_head.num_classes)
    with_critic = train_step_time(cfg, data, args, device)
    without = train_step_time(
        load_config(args.dataset, False, args.cfg_options), data, args,
        device)
    report['train'] = dict(
        with_critic=with_critic, without_critic=without,
        critic_ratio=with_critic['seconds'] / without['seconds'])
    report['inference'] = images_per_second(cfg, args, infer, device)
    return report


def format_report(r: Dict) -> str:
    """The report as a markdown table."""
    size, train, infer = r['size'], r['train'], r['inference']
    mem = (lambda m: f", peak {m['peak_gib']:.1f} GiB"
           if m['peak_gib'] is not None else '')
    h, w = r['shape']
    fh, fw = size['flops_shape']
    ih, iw = r['infer_shape']
    return '\n'.join([
        f"SwinMTL {r['dataset']}; device: {r['device_name']}, torch "
        f"{r['torch']}, {r['precision']}", '', '| measurement | value |',
        '|---|---|',
        f"| parameters: generator (encoder, decoder, heads) / critic | "
        f"{size['generator_params_m']:.1f}M / {size['critic_params_m']:.1f}M |",
        f"| generator GMACs, one {fh}×{fw} image: encoder + decoder and "
        f"heads | {size['encoder_gmacs']:.1f} + "
        f"{size['decoder_heads_gmacs']:.1f} |",
        f"| train step with critic, {r['batch_size']} × {h}×{w} | "
        f"{train['with_critic']['seconds']:.3f} s{mem(train['with_critic'])} |",
        f"| train step without critic | {train['without_critic']['seconds']:.3f}"
        f" s{mem(train['without_critic'])} |",
        f"| with / without critic | {train['critic_ratio']:.2f}× |",
        f"| inference, {ih}×{iw}, batch 1 | {infer['images_per_s']:.2f} "
        f"images/s |"])


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    # the optimizer builder logs every parameter group at INFO
    MMLogger.get_instance('swinmtl_step', log_level='WARNING')
    report = run(args)
    print(format_report(report))
    write_json(report, args.json_out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
