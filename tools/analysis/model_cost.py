# Copyright (c) mmcast contributors. All rights reserved.
"""Parameters, FLOPs, CPU latency and memory of MMDetection models.

Works for mmcast configs and stock mmdet configs alike (``mmcast`` is
imported first so its modules are registered)::

    python tools/analysis/model_cost.py CONFIG [CONFIG2] \
        --shape 512 1024 --repeats 3 [--train-step] [--out cost.json] \
        [--flops-shape 1024 2048]

For every config the model is built (weights are never loaded:
``init_weights`` is not called, so no checkpoint is downloaded) and
measured on one synthetic ``H x W`` image (batch 1):

* ``params``: all parameters (and the trainable ones);
* ``flops``: ``mmengine.analysis`` FlopAnalyzer on the ``mode='tensor'``
  forward (backbone + heads, no post-processing) at ``--flops-shape``
  (default: ``--shape``), fvcore convention: one multiply-add = one FLOP,
  i.e. the count is in **MACs** (as the Mask2Former / Detectron2 papers
  report "FLOPs"; FLOPs in the strict sense are twice it).
  ``mmcast.utils.flop_handlers`` adds the handlers MMEngine lacks (fused
  attention ``aten::scaled_dot_product_attention`` and its kernels,
  ``aten::baddbmm``); ``flops_by_operator`` splits the count by op and
  ``uncounted_ops`` lists every traced op that still counts 0 (elementwise
  ops such as ``aten::add``/``aten::mul``/``aten::gelu``/``aten::softmax``,
  and any op without a handler), printed after the total;
* ``latency``: median wall time of ``--repeats`` inference passes
  (data preprocessor + ``mode='predict'`` incl. post-processing) in eval mode
  under ``torch.no_grad`` after one warm-up pass, on CPU with
  ``torch.get_num_threads()`` threads (or on ``--device``). On a loaded
  machine multi-threaded CPU timings are erratic (OpenMP barriers starve);
  ``--threads 1`` gives stable, comparable numbers;
* ``peak_rss`` (Linux): peak resident memory of the process while measuring
  (the peak is reset after building each model; includes the Python/torch
  baseline given as ``base_rss``);
* with ``--train-step``: median time of a training step (``mode='loss'`` on
  synthetic ground truth + ``backward()``, no optimizer), and its peak RSS.
  Training-time ``batch_augments`` of the data preprocessor (e.g. LSJ's
  1024x1024 ``BatchFixedSizePad``) are disabled so that all models see the
  same ``H x W``.

With two configs (e.g. student, teacher) the ratios CONFIG2 / CONFIG1 are
printed too. Grounding models need a caption: ``--text 'person . car .'``.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from typing import List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

try:
    import mmcast  # noqa: F401  (registers mmcast modules)
except ModuleNotFoundError as e:  # not installed: use the repo checkout
    if e.name != 'mmcast':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    import mmcast  # noqa: F401

from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules
from mmcast.utils.flop_handlers import count_flops, format_uncounted


def parse_args():
    parser = argparse.ArgumentParser(
        description='Parameters, FLOPs and CPU latency of MMDet configs')
    parser.add_argument('configs', nargs='+', help='one or two config files')
    parser.add_argument(
        '--shape', type=int, nargs=2, default=[512, 1024],
        metavar=('H', 'W'), help='input height and width')
    parser.add_argument(
        '--flops-shape', type=int, nargs=2, default=None,
        metavar=('H', 'W'),
        help='input height and width of the FLOP count (default: --shape)')
    parser.add_argument(
        '--repeats', type=int, default=3,
        help='timed passes (median); 0 skips latency and train step')
    parser.add_argument(
        '--train-step', action='store_true',
        help='also time forward+backward of the training loss')
    parser.add_argument('--no-flops', action='store_true')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument(
        '--text', default=None,
        help='caption put in data samples (Grounding DINO-like models)')
    parser.add_argument('--out', default=None, help='write results as JSON')
    parser.add_argument('--quiet', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--args-json', default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        '--no-isolate', action='store_true',
        help='measure several configs in this process (by default each is '
        'measured in a fresh subprocess so memory peaks do not mix)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of every config, xxx=yyy format')
    args = parser.parse_args()
    if args.args_json:  # child of measure_in_subprocess
        args.__dict__.update(json.loads(args.args_json))
        args.args_json = None
    return args


# ---------------------------------------------------------------- memory
def _status_kb(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> None:
    """Reset VmHWM (Linux >= 4.0); silently a no-op elsewhere."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def peak_rss_mb() -> Optional[float]:
    kb = _status_kb('VmHWM')
    if kb is None:
        import resource
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.


def rss_mb() -> Optional[float]:
    kb = _status_kb('VmRSS')
    return None if kb is None else kb / 1024.


# ---------------------------------------------------------------- helpers
def build_model(config: str, cfg_options: Optional[dict], device: str):
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    return model.to(device).eval()


def make_batch(shape, text=None, with_gt=False):
    H, W = shape
    return demo_mm_inputs(
        batch_size=1,
        image_shapes=(3, H, W),
        num_items=[5] if with_gt else None,
        num_classes=2,  # labels are all 1 (demo_mm_inputs draws [1, n))
        with_mask=with_gt,
        texts=None if text is None else [text])


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def count_params(model) -> dict:
    return dict(
        params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(
            p.numel() for p in model.parameters() if p.requires_grad))


def measure_flops(model, shape, text=None) -> dict:
    """MACs of the ``mode='tensor'`` forward and the ops left uncounted."""
    data = model.data_preprocessor(make_batch(shape, text), False)
    forward = model.forward
    model.forward = partial(
        forward, data_samples=data['data_samples'], mode='tensor')
    try:
        with torch.no_grad():
            analyzer = count_flops(model, (data['inputs'], ))
            flops = analyzer.total()
            by_module = analyzer.by_module()
            by_module = {
                name: by_module[name]
                for name, _ in model.named_children() if name in by_module
            }
            by_operator = analyzer.by_operator()
            uncounted = analyzer.unsupported_ops()
    finally:
        model.forward = forward
    return dict(
        flops=int(flops),
        flops_by_module={k: int(v) for k, v in by_module.items()},
        flops_by_operator={
            k: int(v)
            for k, v in sorted(by_operator.items(), key=lambda kv: -kv[1])
        },
        uncounted_ops=dict(uncounted),
        input_shape=list(data['inputs'].shape[-2:]))


def measure_latency(model, shape, repeats, device, text=None) -> dict:
    times: List[float] = []
    with torch.no_grad():
        for i in range(repeats + 1):  # first pass = warm-up
            batch = make_batch(shape, text)
            _sync(device)
            t0 = time.perf_counter()
            data = model.data_preprocessor(batch, False)
            model(**data, mode='predict')
            _sync(device)
            if i:
                times.append(time.perf_counter() - t0)
    return dict(latency_s=statistics.median(times), latency_all_s=times)


def measure_train_step(model, shape, repeats, device, text=None) -> dict:
    preprocessor = model.data_preprocessor
    if getattr(preprocessor, 'batch_augments', None):
        preprocessor.batch_augments = None
    model.train()
    times: List[float] = []
    try:
        for i in range(repeats + 1):
            batch = make_batch(shape, text, with_gt=True)
            _sync(device)
            t0 = time.perf_counter()
            data = preprocessor(batch, True)
            losses = model(**data, mode='loss')
            loss, _ = model.parse_losses(losses)
            loss.backward()
            _sync(device)
            if i:
                times.append(time.perf_counter() - t0)
            model.zero_grad(set_to_none=True)
    finally:
        model.eval()
    return dict(train_step_s=statistics.median(times), train_step_all_s=times)


def measure(config, args) -> dict:
    result = dict(config=config)
    result['base_rss_mb'] = rss_mb()
    model = build_model(config, args.cfg_options, args.device)
    result.update(count_params(model))
    result['model_rss_mb'] = rss_mb()
    shape = tuple(args.shape)
    if not args.no_flops:
        try:
            result.update(
                measure_flops(model, tuple(args.flops_shape or shape),
                              args.text))
        except Exception as e:  # noqa: BLE001 - report, keep measuring
            result['flops'] = None
            result['flops_error'] = f'{type(e).__name__}: {e}'
    if args.repeats > 0:
        reset_peak_rss()
        result.update(
            measure_latency(model, shape, args.repeats, args.device,
                            args.text))
        result['peak_rss_infer_mb'] = peak_rss_mb()
    if args.train_step and args.repeats > 0:
        reset_peak_rss()
        result.update(
            measure_train_step(model, shape, args.repeats, args.device,
                               args.text))
        result['peak_rss_train_mb'] = peak_rss_mb()
    del model
    return result


def measure_in_subprocess(config: str, args) -> dict:
    """Measure one config in a fresh interpreter running this script."""
    with tempfile.TemporaryDirectory() as tmp:
        out = osp.join(tmp, 'result.json')
        child_args = dict(vars(args), configs=[config], out=out, quiet=True)
        subprocess.run([
            sys.executable,
            osp.abspath(__file__), config, '--args-json',
            json.dumps(child_args)
        ],
                       check=True)
        with open(out) as f:
            return json.load(f)['results'][0]


def _fmt(value, unit='', scale=1., digits=2):
    if value is None:
        return 'n/a'
    return f'{value / scale:.{digits}f}{unit}'


def print_result(r: dict) -> None:
    print(f"\n== {r['config']}")
    print(f"params          {_fmt(r['params'], ' M', 1e6)} "
          f"(trainable {_fmt(r['trainable_params'], ' M', 1e6)})")
    if 'flops' in r:
        print(f"FLOPs (MACs)    {_fmt(r['flops'], ' G', 1e9)}"
              + (f" at padded input {r['input_shape']}"
                 if r.get('input_shape') else ''))
        for name, v in r.get('flops_by_module', {}).items():
            if v:
                print(f'  {name:<22}{_fmt(v, " G", 1e9)}')
        for name, v in r.get('flops_by_operator', {}).items():
            print(f'  op {name:<30} {_fmt(v, " G", 1e9, 3)}')
        if 'uncounted_ops' in r:
            print('  not counted (0 FLOPs): '
                  f"{format_uncounted(r['uncounted_ops'])}")
        if r.get('flops_error'):
            print(f"  FLOPs failed: {r['flops_error']}")
    if 'latency_s' in r:
        print(f"latency         {_fmt(r['latency_s'], ' s', 1., 3)} "
              f"(median of {len(r['latency_all_s'])}, "
              f"{1. / r['latency_s']:.2f} FPS)")
        print(f"peak RSS infer  {_fmt(r['peak_rss_infer_mb'], ' MB', 1., 0)}"
              f" (process base {_fmt(r['base_rss_mb'], ' MB', 1., 0)}, "
              f"after build {_fmt(r['model_rss_mb'], ' MB', 1., 0)})")
    if 'train_step_s' in r:
        print(f"train step      {_fmt(r['train_step_s'], ' s', 1., 3)} "
              '(forward+backward, median)')
        print(f"peak RSS train  {_fmt(r['peak_rss_train_mb'], ' MB', 1., 0)}")


def ratios(a: dict, b: dict) -> dict:
    out = {}
    for key in ('params', 'flops', 'latency_s', 'train_step_s',
                'peak_rss_infer_mb'):
        if a.get(key) and b.get(key):
            out[key] = b[key] / a[key]
    return out


def main():
    args = parse_args()
    assert 1 <= len(args.configs) <= 2, 'give one or two configs'
    if args.threads:
        torch.set_num_threads(args.threads)
    register_all_modules(init_default_scope=False)
    if not args.quiet:
        flops_at = (f', FLOPs at {args.flops_shape[0]}x{args.flops_shape[1]}'
                    if args.flops_shape else '')
        print(f'input {args.shape[0]}x{args.shape[1]}{flops_at}, batch 1, '
              f'device {args.device}, {torch.get_num_threads()} threads, '
              f'torch {torch.__version__}')
    results = []
    for config in args.configs:
        if len(args.configs) > 1 and not args.no_isolate:
            r = measure_in_subprocess(config, args)
        else:
            r = measure(config, args)
        if not args.quiet:
            print_result(r)
        results.append(r)
    out = dict(
        shape=list(args.shape),
        flops_shape=list(args.flops_shape or args.shape),
        device=args.device,
        threads=torch.get_num_threads(),
        results=results)
    if len(results) == 2:
        out['ratios_config2_over_config1'] = ratios(*results)
        print(f'\n== ratios {osp.basename(args.configs[1])} / '
              f'{osp.basename(args.configs[0])}')
        for k, v in out['ratios_config2_over_config1'].items():
            print(f'  {k:<18}{v:.2f}x')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(out, f, indent=2)


if __name__ == '__main__':
    main()
