# Copyright (c) mmcast contributors. All rights reserved.
"""Export a published mmcast student to a ``.pt2`` package (AOTInductor).

From a published student to predictions on a directory of images::

    python tools/deploy/export_pt2.py checkpoints/cast_r18_toy.py \
        checkpoints/cast_r18_toy-<sha8>.pth checkpoints/cast_r18_toy.pt2 \
        --shape 96 192
    python tools/deploy/pt2_infer.py checkpoints/cast_r18_toy.pt2 \
        data/toy/leftImg8bit/val/ --out-dir outputs/cast_r18_toy_pt2

The package holds the whole predict (normalisation, network, top-k, mask
scores, upsampled masks and boxes) compiled for the fixed canvas
``--shape H W`` (the padded size after the test resize) and this machine's
device; it runs with PyTorch alone. It holds compiled code: load only
packages you trust (``pt2_infer.py --sha256`` checks the printed hash).
"""
import argparse

from mmengine.config import DictAction

from mmcast.deploy import DeployError, export_pt2
from mmcast.deploy.pt2_package import PRECISIONS
from mmcast.utils.checkpoint_loading import CheckpointError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a (published) Mask2Former or EoMT student to '
        'a .pt2 package (torch.export + AOTInductor)')
    parser.add_argument('config', help='the published <name>.py (or any '
                        'config whose model is a Mask2Former or an '
                        'EoMTStudent)')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument('out_file', help='the .pt2 file to write')
    parser.add_argument(
        '--shape', nargs=2, type=int, metavar=('H', 'W'), required=True,
        help='the fixed canvas: the padded input size after the test resize')
    parser.add_argument('--precision', choices=list(PRECISIONS),
                        default='float32',
                        help='weights and activations (default: float32)')
    parser.add_argument('--device', default='cpu',
                        help='where the package runs: cpu or cuda')
    parser.add_argument(
        '--score-resolution', choices=['low', 'input'], default='low',
        help='score masks on the 1/4-resolution logits (default) or on the '
        'upsampled masks')
    parser.add_argument(
        '--mask-format', choices=['packed', 'bool'], default='packed',
        help='masks packed 8 pixels a byte (default) or full-resolution '
        'bool (docs/en/user_guides/deployment.md)')
    parser.add_argument('--max-batch', type=int, default=64)
    parser.add_argument('--no-verify', action='store_true',
                        help='skip the package vs eager PyTorch check')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        out = export_pt2(args.config, args.checkpoint, args.out_file,
                         input_size=args.shape, precision=args.precision,
                         device=args.device,
                         score_resolution=args.score_resolution,
                         mask_format=args.mask_format,
                         max_batch=args.max_batch,
                         cfg_options=args.cfg_options,
                         verify=not args.no_verify)
    except (CheckpointError, DeployError, FileNotFoundError) as e:
        raise SystemExit(f'export_pt2: {e}')
    meta = out['metadata']
    print(f'{out["file"]}: images uint8 (B, {meta["input_size"][0]}, '
          f'{meta["input_size"][1]}, 3), {len(meta["classes"])} classes, '
          f'{meta["capacity"]} instances per image, {meta["precision"]} on '
          f'{meta["device"]}\nsha256 {out["sha256"]}')
    if out['max_score_diff'] is not None:
        print(f'package vs eager PyTorch: max score difference '
              f'{out["max_score_diff"]:.1e}')


if __name__ == '__main__':
    main()
