# Copyright (c) mmcast contributors. All rights reserved.
"""Instance segmentation with a ``.pt2`` package of the student.

From a package to predictions on a directory of images::

    python tools/deploy/pt2_infer.py checkpoints/cast_r18_toy.pt2 \
        data/toy/leftImg8bit/val/ --out-dir outputs/cast_r18_toy_pt2 \
        --sha256 <sha256 printed by export_pt2.py>
    # -> outputs/cast_r18_toy_pt2/vis/<image name>   (drawn predictions)
    #    outputs/cast_r18_toy_pt2/preds/<image>.json (labels, scores,
    #                                                 bboxes, COCO RLE masks)

A package holds compiled code: run only packages you trust; ``--sha256``
refuses a file with another hash before loading it.
"""
import argparse

from mmcast.deploy import PT2Inferencer
from mmcast.deploy import DeployError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Run an mmcast .pt2 package (AOTInductor)')
    parser.add_argument('model', help='the .pt2 file')
    parser.add_argument('inputs', nargs='+',
                        help='image files or directories of images')
    parser.add_argument('--out-dir', default='outputs',
                        help='writes vis/ and preds/ (default: outputs)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='minimum score of an instance (default: 0.3)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--device', default='cpu',
                        help='the device the package was exported for')
    parser.add_argument('--sha256', default=None,
                        help='the package\'s expected sha256')
    parser.add_argument('--no-save-vis', action='store_true',
                        help='do not draw the predictions')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        inferencer = PT2Inferencer(args.model, device=args.device,
                                   score_thr=args.score_thr,
                                   batch_size=args.batch_size,
                                   sha256=args.sha256)
        results = inferencer(args.inputs, out_dir=args.out_dir,
                             no_save_vis=args.no_save_vis)
    except (DeployError, FileNotFoundError) as e:
        raise SystemExit(f'pt2_infer: {e}')
    for line in inferencer.summary(results, args.score_thr, args.out_dir):
        print(line)


if __name__ == '__main__':
    main()
