# Copyright (c) mmcast contributors. All rights reserved.
"""Inference speed of the student and the teachers, side by side in one run.

Every model is built from the real-size configs with random weights
(nothing downloaded: the box-prompted teacher's bert-base-shaped BERT and
SAM 2.1 Hiera-L are written with random weights into ``--assets-dir``) and
predicts one synthetic image (batch 1) at each ``--shapes`` entry. Variants:

* ``stock``: MMDetection's ``MaskFormerFusionHead`` (every query mask
  upsampled to the padded input, then to the original shape; Python-loop
  boxes);
* ``lean``: the configs' ``LeanMaskFormerFusionHead`` (only kept masks;
  the same 100 instances); ``lean top-20``: keeping the 20 best (random
  weights score every query alike, so a score threshold would keep all or
  nothing);
* ``lean+fused``: plus :func:`mmcast.deploy.prepare_for_inference`'s fused
  attention (``+cl``: channels-last as well; ``+compile``: torch.compile of
  backbone and pixel decoder, with ``--compile``);
* ``lean+fused+autocast``: plus fp16 (CUDA) / bf16 (CPU) autocast;
* ``onnxruntime``: the student exported with :func:`mmcast.deploy.
  export_onnx` at that shape, run by ONNX Runtime (CPU, or CUDA where
  available), with the lean post-processing outside the graph.

For each: median seconds per image, images/s, and the post-processing's
share of the time (everything after the network's last logits). Then the
ratios the deployment targets are stated against (student ÷ teachers;
ONNX Runtime ÷ eager) and, with ``--labeling``, the pseudo-labelling
throughput (``labeling_throughput.py``) at each ``--labeling-batch-sizes``.
Only numbers of one run compare; absolute times hold for the device
printed with them::

    python tools/benchmark/inference.py --shapes 512 1024 1024 2048 \\
        --repeats 3 --labeling --json-out work_dirs/inference.json

``--deploy`` times instead the students' deployment variants (the static
one-graph predict eager in fp32 and half precision, compiled, captured in
a CUDA graph, as a ``.pt2`` package, and ONNX Runtime: see
``deploy_variants.py``) at each ``--batch-sizes``, with images/s,
post-processing share and achieved TFLOP/s; ``--profile`` adds each
variant's top operators by device time::

    python tools/benchmark/inference.py --deploy --profile \\
        --models 'student 52M' --shapes 1024 2048 --batch-sizes 1 4 \\
        --repeats 10 --warmup 2 --json-out work_dirs/deploy.json
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

import torch
from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from deploy_variants import (DEPLOY_VARIANTS, deploy_rows,  # noqa: E402
                             format_deploy_report)
from labeling_throughput import labeling_throughput, stock_head  # noqa
from real_size_step import CONFIG_DIR  # noqa: E402
from stage_overhead import packed_batch  # noqa: E402

import mmcast  # noqa: E402,F401  (registers mmcast modules)
from mmcast.deploy import inference_autocast, prepare_for_inference  # noqa
from mmdet.registry import MODELS  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402

MODELS_BENCHED = {
    'student 52M': 'supervised_student_{ds}.py',  # its test pipeline too
    'teacher Mask2Former Swin-L': 'adapt_teacher_{ds}.py',
    'teacher Grounding-DINO-L + SAM 2.1-L':
        'teachers/grounding_dino_sam2_{ds}.py',
    # the student's architecture at toy width (checks, quick CPU runs)
    'student toy': 'toy/supervised_dinov2-tiny-dpt_1xb4-2000it_toy-10p.py',
}
DEFAULT_MODELS = list(MODELS_BENCHED)[:3]
MASK2FORMER_VARIANTS = ('stock', 'lean', 'lean top-20', 'lean+fused',
                        'lean+fused+cl', 'lean+fused+autocast')
DEPLOY_TOP_K = 20  # 'top-20': the 20 best instances, a deployment setting


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='cityscapes',
                        choices=['cityscapes', 'ade20k'])
    parser.add_argument('--device', default=None)
    parser.add_argument('--shapes', type=int, nargs='+',
                        default=[512, 1024, 1024, 2048],
                        help='H W pairs of the input images')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--models', nargs='+', default=DEFAULT_MODELS,
                        help='which of: ' + ', '.join(MODELS_BENCHED))
    parser.add_argument('--num-queries', type=int, default=None,
                        help='reduce the Mask2Formers\' queries (checks)')
    parser.add_argument('--compile', action='store_true',
                        help='also time torch.compile (slow to compile)')
    parser.add_argument('--skip-onnx', action='store_true')
    parser.add_argument('--labeling', action='store_true',
                        help='pseudo-labelling throughput, stock vs lean')
    parser.add_argument('--labeling-images', type=int, default=8)
    parser.add_argument('--labeling-score-thr', type=float, default=0.05,
                        help='pseudo-label threshold of the labelling run '
                        '(random weights score low)')
    parser.add_argument('--labeling-batch-sizes', type=int, nargs='+',
                        default=[1], help='labelling batch sizes')
    parser.add_argument(
        '--deploy', action='store_true',
        help='instead of the eager variants: the students\' deployment '
        'variants (eager fp32 / half, +compile, +CUDA graph, .pt2, ONNX '
        'Runtime) at each --batch-sizes, with achieved TFLOP/s')
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 4])
    parser.add_argument('--deploy-variants', nargs='+',
                        default=list(DEPLOY_VARIANTS),
                        help='which of: ' + ', '.join(DEPLOY_VARIANTS))
    parser.add_argument(
        '--mask-formats', nargs='+', default=['packed'],
        choices=['packed', 'bool'],
        help='with --deploy: the static variants\' mask outputs, each its '
        'own row (packed: 8 pixels a byte, the default; bool: full '
        'resolution)')
    parser.add_argument(
        '--profile', action='store_true',
        help='with --deploy: the top operators by device time of each '
        'variant (torch.profiler)')
    parser.add_argument('--profile-top', type=int, default=10)
    parser.add_argument('--assets-dir', default='work_dirs/benchmark_assets')
    parser.add_argument('--json-out', default=None)
    args = parser.parse_args(argv)
    if len(args.shapes) % 2:
        parser.error('--shapes takes H W pairs')
    args.shapes = [tuple(args.shapes[i:i + 2])
                   for i in range(0, len(args.shapes), 2)]
    return args


def model_config(name: str, args: argparse.Namespace) -> Config:
    """The model config of a benched model (assets written when needed)."""
    cfg = Config.fromfile(osp.join(
        CONFIG_DIR, MODELS_BENCHED[name].format(ds=args.dataset)))
    model = cfg.model
    if model.get('type') == 'BoxPromptedTeacher':
        from mmcast.testing import real_size_assets as assets
        from mmdet.datasets import CocoDataset
        os.makedirs(args.assets_dir, exist_ok=True)
        bert = assets.write_bert_base(
            osp.join(args.assets_dir, 'bert-base'),
            CocoDataset.METAINFO['classes'] + ('rider', ))
        model.detector_cfg_options['language_model.name'] = bert
        model.sam2.checkpoint = assets.write_sam2_hiera_l(
            osp.join(args.assets_dir, 'sam2.1_hiera_l.pt'))
    elif args.num_queries:
        model.panoptic_head.num_queries = args.num_queries
        model.test_cfg.max_per_image = min(model.test_cfg.max_per_image,
                                           args.num_queries)
    return cfg


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn: Callable, spent: List[float], device: str) -> Callable:
    """``fn`` adding its (synchronised) seconds to ``spent[0]``."""

    def wrapper(*args, **kwargs):
        _sync(device)
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        _sync(device)
        spent[0] += time.perf_counter() - start
        return out

    return wrapper


def median_runs(run: Callable[[], float], args) -> Dict:
    """Median seconds of ``run`` (which returns its post-processing
    seconds) and the median share of post-processing in it."""
    times, shares = [], []
    for i in range(args.warmup + args.repeats):
        spent = [0.0]
        post = timed(run, spent, args.device)()
        if i >= args.warmup:
            times.append(spent[0])
            shares.append(post / spent[0])
    return dict(seconds=statistics.median(times),
                images_per_s=1.0 / statistics.median(times),
                postprocess_share=statistics.median(shares))


def eager(cfg: Config, variant: str, shape, args) -> Dict:
    """Batch-1 ``model.predict`` of one variant (preprocessing excluded);
    post-processing is everything after the network's logits."""
    device = args.device
    model_cfg = copy.deepcopy(cfg.model)
    is_mask2former = 'panoptic_fusion_head' in model_cfg
    if variant == 'stock':
        stock_head(model_cfg)
    if variant.endswith(f'top-{DEPLOY_TOP_K}'):
        model_cfg.test_cfg.max_per_image = DEPLOY_TOP_K
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).to(device).eval()
    if 'fused' in variant:
        prepare_for_inference(model, channels_last='+cl' in variant,
                              compile='+compile' in variant)
    batch = packed_batch(1, shape)
    batch['data_samples'][0].set_metainfo(dict(text=cfg.model.get('classes')))
    network = [0.0]
    if is_mask2former:
        model.extract_feat = timed(model.extract_feat, network, device)
        model.panoptic_head.forward = timed(model.panoptic_head.forward,
                                            network, device)
    autocast = 'autocast' in variant
    with torch.no_grad():
        data = model.data_preprocessor(copy.deepcopy(batch), False)

    @torch.no_grad()
    def run() -> float:
        spent = [0.0]
        network[0] = 0.0
        with inference_autocast(device, None if autocast else torch.float32):
            timed(model.predict, spent, device)(
                data['inputs'], copy.deepcopy(data['data_samples']))
        return spent[0] - network[0] if is_mask2former else 0.0

    result = median_runs(run, args)
    if not is_mask2former:
        result.pop('postprocess_share')
    result['params_m'] = sum(p.numel() for p in model.parameters()) / 1e6
    return result


def onnxruntime_student(cfg: Config, shape, args, tmp: str) -> Dict:
    """The student exported at ``shape`` (padded) and run by ONNX Runtime
    with as many threads as PyTorch; the lean post-processing in PyTorch
    outside the graph."""
    import onnxruntime as ort

    from mmcast.deploy import ONNXInferencer
    from mmcast.deploy import export_onnx
    from mmcast.models.seg_heads import lean_instance_results
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model)).eval()
    config = osp.join(tmp, 'student.py')
    checkpoint = osp.join(tmp, 'student.pth')
    cfg.dump(config)
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    divisor = cfg.model.data_preprocessor.pad_size_divisor
    padded = tuple(-(-size // divisor) * divisor for size in shape)
    onnx_file = osp.join(tmp, f'student_{padded[0]}x{padded[1]}.onnx')
    start = time.perf_counter()
    export_onnx(config, checkpoint, onnx_file, input_shape=padded,
                verify=False)
    export_s = time.perf_counter() - start
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    cuda = args.device.startswith('cuda')
    inferencer = ONNXInferencer(
        onnx_file, session_options=options,
        providers=(['CUDAExecutionProvider', 'CPUExecutionProvider']
                   if cuda else None))
    image = packed_batch(1, shape)['inputs'][0].permute(1, 2, 0).numpy()
    batch = inferencer.pad_batch([image])  # BGR, as the eager batch
    meta = inferencer.meta

    def run() -> float:
        cls_logits, mask_logits = inferencer.forward(batch)
        spent = [0.0]
        timed(lean_instance_results, spent, args.device)(
            torch.from_numpy(cls_logits[0]).to(args.device),
            torch.from_numpy(mask_logits[0]).to(args.device),
            meta['num_things_classes'], batch_input_shape=padded,
            img_shape=shape, ori_shape=shape,
            max_per_image=meta['max_per_image'])
        return spent[0]

    result = median_runs(run, args)
    result.update(export_s=export_s,
                  providers=inferencer.session.get_providers())
    return result


def deploy_student(cfg: Config, shape, args, tmp: str):
    """The deployment variants of a student (``deploy_variants.py``)."""
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model)).to(args.device).eval()
    config = osp.join(tmp, 'student.py')
    checkpoint = osp.join(tmp, 'student.pth')
    cfg.dump(config)
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    return deploy_rows(model, config, checkpoint, shape, args, tmp)


def variants(cfg: Config, args) -> List[str]:
    """The eager variants of a model (Mask2Former or box-prompted)."""
    if 'panoptic_fusion_head' in cfg.model:
        names = list(MASK2FORMER_VARIANTS)
        return names + (['lean+fused+compile'] if args.compile else [])
    return ['plain', 'fused', 'fused+autocast']


def run(args: argparse.Namespace) -> Dict:
    args.device = args.device or ('cuda' if torch.cuda.is_available() else
                                  'cpu')
    register_all_modules()
    report: Dict = dict(
        device=args.device, torch=torch.__version__, rows=[], ratios=[],
        device_name=(torch.cuda.get_device_name()
                     if args.device.startswith('cuda') else
                     f'CPU, {torch.get_num_threads()} threads'))
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes if args.deploy else ():
            for name in args.models:
                if name.startswith('student'):
                    rows, profiles = deploy_student(
                        model_config(name, args), shape, args, tmp)
                    report.setdefault('deploy', []).extend(
                        dict(model=name, **r) for r in rows)
                    report.setdefault('profiles', []).extend(profiles)
        for shape in () if args.deploy else args.shapes:
            best = {}
            for name in args.models:
                cfg = model_config(name, args)
                for variant in variants(cfg, args):
                    row = dict(model=name, shape=list(shape),
                               variant=variant,
                               **eager(cfg, variant, shape, args))
                    report['rows'].append(row)
                    print(format_row(row), flush=True)
                    best[name, variant] = row['images_per_s']
                if name.startswith('student') and not args.skip_onnx:
                    row = dict(model=name, shape=list(shape),
                               variant='onnxruntime',
                               **onnxruntime_student(cfg, shape, args, tmp))
                    report['rows'].append(row)
                    print(format_row(row), flush=True)
                    best[name, 'onnxruntime'] = row['images_per_s']
            report['ratios'] += ratios(best, shape)
        if args.labeling:
            report['labeling'] = labeling_throughput(args, tmp)
    return report


def ratios(best: Dict, shape) -> List[Dict]:
    """Speed ratios of one shape, each of two rows of this run."""
    student = 'student 52M'
    pairs = [
        ((student, 'lean'), ('teacher Mask2Former Swin-L', 'lean')),
        ((student, 'lean+fused'),
         ('teacher Mask2Former Swin-L', 'lean+fused')),
        ((student, 'lean+fused'),
         ('teacher Grounding-DINO-L + SAM 2.1-L', 'fused')),
        ((student, 'lean+fused+autocast'),
         ('teacher Grounding-DINO-L + SAM 2.1-L', 'fused+autocast')),
        ((student, 'lean'), (student, 'stock')),
        ((student, 'onnxruntime'), (student, 'lean+fused')),
    ]
    return [dict(shape=list(shape), faster=' '.join(a), slower=' '.join(b),
                 ratio=best[a] / best[b])
            for a, b in pairs if a in best and b in best]


def format_row(row: Dict) -> str:
    """A table row; ONNX Runtime's with the execution provider it ran on
    (ONNX Runtime falls back to the CPU where the CUDA one is missing)."""
    share = row.get('postprocess_share')
    variant = row['variant']
    if row.get('providers'):
        variant += f" ({row['providers'][0]})"
    return (f"| {row['model']} | {row['shape'][0]}×{row['shape'][1]} | "
            f"{variant} | {row['seconds']:.3f} | "
            f"{row['images_per_s']:.3f} | "
            f"{'—' if share is None else f'{100 * share:.1f} %'} |")


def format_report(report: Dict) -> str:
    """The report as markdown tables."""
    lines = [f"device: {report['device_name']}, torch {report['torch']}", '']
    if 'deploy' in report:
        lines.append(format_deploy_report(report['deploy'],
                                          report['profiles']))
    else:
        lines += ['| model | input | variant | s / image | images/s | '
                  'post-processing |', '|---|---|---|---|---|---|']
        lines += [format_row(r) for r in report['rows']]
        lines += ['', '| input | faster | slower | ratio |',
                  '|---|---|---|---|']
        lines += [f"| {r['shape'][0]}×{r['shape'][1]} | {r['faster']} | "
                  f"{r['slower']} | {r['ratio']:.2f}× |"
                  for r in report['ratios']]
    if 'labeling' in report:
        lines += ['', '| pseudo-labelling teacher | batch | images/s | '
                  'pseudo-labels per image |', '|---|---|---|---|']
        lines += [f"| {r['teacher']} | {r['batch']} | "
                  f"{r['images_per_s']:.2f} | "
                  f"{r['pseudo_labels_per_image']:.1f} |"
                  for r in report['labeling']]
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(format_report(report))
    if args.json_out:
        os.makedirs(osp.dirname(osp.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, 'w') as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C: one line, exit 130
        print('interrupted: nothing measured is kept (the table comes at the '
              'end); run the same command to measure again',
              file=sys.stderr)
        sys.exit(130)
