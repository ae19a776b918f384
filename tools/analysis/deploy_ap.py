# Copyright (c) mmcast contributors. All rights reserved.
"""Mask AP of the static deployment predict against the model's own
``predict``, on a config's validation set.

The deployment path (:mod:`mmcast.deploy.static_predict`) keeps the stock
head's (query, class) pairs and masks but scores the masks on the head's
1/4-resolution logits (``score_resolution='low'``) and, when the original
image is larger or smaller than the network's input, resizes the binary
masks rather than the logits; it may also run in half precision. This
script measures what that costs in COCO mask AP (``CocoMetric``)::

    python tools/analysis/deploy_ap.py CONFIG CHECKPOINT \\
        [--scale 128 64] [--precisions float32 bfloat16]

Rows: ``predict`` (the model, lean fusion head), then the static predict
at each precision with ``score_resolution`` ``'input'`` (the stock score)
and ``'low'``. ``--scale W H`` overrides the test ``Resize`` so that the
results are rescaled to the original images.
"""
import argparse
import copy
import json
import sys
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader

import mmcast  # noqa: F401  (registers mmcast modules)
from mmcast.deploy import build_static_predictor, finish_instances
from mmcast.deploy.loading import load_mask2former
from mmcast.deploy.pt2_package import PRECISIONS


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--scale', type=int, nargs=2, metavar=('W', 'H'),
                        help='test Resize scale (default: the config\'s)')
    parser.add_argument('--precisions', nargs='+', default=['float32'],
                        choices=list(PRECISIONS))
    parser.add_argument('--num-images', type=int, default=None)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--json-out', default=None)
    parser.add_argument(
        '--cfg-options', nargs='+', default=[],
        help='key=value overrides of the config (e.g. the data root)')
    return parser.parse_args(argv)


def _config(args) -> Config:
    cfg = Config.fromfile(args.config)
    for option in args.cfg_options:
        key, value = option.split('=', 1)
        cfg.merge_from_dict({key: value})
    if args.scale:
        for step in cfg.val_dataloader.dataset.pipeline:
            if step['type'] == 'Resize':
                step['scale'] = tuple(args.scale)
    return cfg


def _metric(cfg: Config, dataset):
    from mmdet.registry import METRICS
    evaluators = cfg.val_evaluator
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    coco = [e for e in evaluators if e['type'].endswith('CocoMetric')][0]
    metric = METRICS.build(dict(copy.deepcopy(coco), metric=['segm']))
    metric.dataset_meta = dataset.metainfo
    return metric


def _static_predictions(predictor, data: dict) -> List:
    """The batch's samples with the static predict's instances."""
    samples = data['data_samples']
    height, width = predictor.input_size
    images = torch.zeros(len(samples), height, width, 3, dtype=torch.uint8)
    sizes = []
    for canvas, image in zip(images, data['inputs']):
        h, w = image.shape[-2:]
        canvas[:h, :w] = image.permute(1, 2, 0)
        sizes.append((h, w))
    device = predictor.mean.device
    with torch.no_grad():
        scores, labels, masks, *_ = predictor(
            images.to(device), torch.tensor(sizes, device=device))
    for i, sample in enumerate(samples):
        sample.pred_instances = finish_instances(
            scores[i], labels[i], masks[i], sizes[i],
            sample.metainfo['ori_shape'], 0.).cpu()
    return samples


def evaluate(args) -> Dict[str, Dict[str, float]]:
    """``{row: {'segm_mAP': ..., 'segm_mAP_50': ...}}``."""
    from mmdet.registry import DATASETS
    cfg = _config(args)
    model, _, _ = load_mask2former(cfg, args.checkpoint)
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    if args.num_images:
        dataset = torch.utils.data.Subset(dataset, range(args.num_images))
        dataset.metainfo = dataset.dataset.metainfo
    loader = DataLoader(dataset, batch_size=args.batch_size,
                        collate_fn=pseudo_collate)
    divisor = int(model.data_preprocessor.pad_size_divisor)
    shapes = [s.metainfo['img_shape'] for b in loader
              for s in b['data_samples']]
    canvas = [-(-max(s[i] for s in shapes) // divisor) * divisor
              for i in (0, 1)]
    rows = {'predict (lean fusion head)': None}
    for precision in args.precisions:
        for resolution in ('input', 'low'):
            rows[f'static {precision}, scores at {resolution} '
                 'resolution'] = (precision, resolution)
    results = {}
    for name, setting in rows.items():
        metric = _metric(cfg, dataset)
        predictor = None if setting is None else build_static_predictor(
            copy.deepcopy(model), canvas, PRECISIONS[setting[0]],
            score_resolution=setting[1])
        for batch in loader:
            data = model.data_preprocessor(copy.deepcopy(batch), False)
            if predictor is None:
                with torch.no_grad():
                    samples = model.predict(data['inputs'],
                                            data['data_samples'])
            else:
                samples = _static_predictions(predictor, batch)
            metric.process(batch, [s.to_dict() for s in samples])
        values = metric.evaluate(len(dataset))
        results[name] = {k.split('/')[-1]: v for k, v in values.items()
                         if k.split('/')[-1] in ('segm_mAP', 'segm_mAP_50')}
        print(f"| {name} | {100 * results[name]['segm_mAP']:.2f} | "
              f"{100 * results[name]['segm_mAP_50']:.2f} |", flush=True)
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    print('| variant | mask AP | AP50 |\n|---|---|---|')
    results = evaluate(args)
    if args.json_out:
        with open(args.json_out, 'w') as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C: one line, exit 130
        print('interrupted: the variants above are all that was measured '
              '(--json-out is not written); run the same command to measure '
              'them all again', file=sys.stderr)
        sys.exit(130)
