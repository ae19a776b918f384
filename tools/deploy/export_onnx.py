# Copyright (c) mmcast contributors. All rights reserved.
"""Export a published mmcast student to ONNX.

From ``make demo``'s CAST student to predictions on a directory of images::

    W=work_dirs/cast_toy/seed0/finetune  # make demo's CAST student (stage 3)
    python tools/publish_model.py $W/finetune_toy.py $W/iter_400.pth \
        checkpoints --name cast_r18_toy
    python tools/deploy/export_onnx.py checkpoints/cast_r18_toy.py \
        checkpoints/cast_r18_toy-<sha8>.pth checkpoints/cast_r18_toy.onnx
    python tools/deploy/onnx_infer.py checkpoints/cast_r18_toy.onnx \
        data/toy/leftImg8bit/val/ --out-dir outputs/cast_r18_toy

The graph maps the padded 0-255 BGR batch (B, 3, H, W) to the last decoder
layer's class and mask logits (normalisation inside); H and W are dynamic
unless ``--shape H W`` fixes them (multiples of the model's
``pad_size_divisor``; a fixed shape suits TensorRT engines). The export is
checked with ``onnx.checker`` and against PyTorch with ONNX Runtime.
"""
import argparse

from mmengine.config import DictAction

from mmcast.deploy import DeployError, export_onnx
from mmcast.utils.checkpoint_loading import CheckpointError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a (published) Mask2Former or EoMT student to '
        'ONNX')
    parser.add_argument('config', help='the published <name>.py (or any '
                        'config whose model is a Mask2Former or an '
                        'EoMTStudent)')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument('out_file', help='the .onnx file to write')
    parser.add_argument(
        '--shape', nargs=2, type=int, metavar=('H', 'W'),
        help='fixed padded input size (default: dynamic height and width)')
    parser.add_argument('--opset', type=int, default=17,
                        help='ONNX opset (default: 17)')
    parser.add_argument(
        '--no-verify', action='store_true',
        help='skip the ONNX Runtime vs PyTorch check')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        out = export_onnx(args.config, args.checkpoint, args.out_file,
                          input_shape=args.shape, opset=args.opset,
                          cfg_options=args.cfg_options,
                          verify=not args.no_verify)
    except (CheckpointError, DeployError, FileNotFoundError) as e:
        raise SystemExit(f'export_onnx: {e}')
    meta = out['metadata']
    shape = 'x'.join(map(str, meta['input_shape'] or ('H', 'W')))
    print(f'{out["file"]}: input images (B, 3, {shape}), '
          f'{len(meta["classes"])} classes, opset {meta["opset"]}')
    print(f'capacity: up to {meta["capacity"]} instances per image '
          f'({meta["num_queries"]} queries, test_cfg.max_per_image='
          f'{meta["max_per_image"]}); onnx_infer.py reports the images that '
          'reach it')
    if out['max_rel_diff'] is not None:
        print(f'ONNX Runtime vs PyTorch: max relative difference '
              f'{out["max_rel_diff"]:.1e}')


if __name__ == '__main__':
    main()
