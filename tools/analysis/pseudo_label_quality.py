# Copyright (c) mmcast contributors. All rights reserved.
"""Precision, recall and instances per image of a pseudo-label file against
ground truth, swept over score thresholds.

    python tools/analysis/pseudo_label_quality.py PSEUDO_JSON GT_JSON \
        [--score-thrs 0.3 0.5 0.7] [--iou-thr 0.5] [--out quality.json]

GT_JSON is any COCO instance json that holds the pseudo-labeled images
(matched by file name): the labeled split, or, for generated data such as
the toy scenes, the full train json (the generator knows D_u's truth too).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from mmcast.pseudo_labels.quality import (  # noqa: E402
    DEFAULT_SCORE_THRS, pseudo_label_quality)
from mmcast.utils.atomic_io import atomic_dump_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('pseudo_labels', help='pseudo-label COCO json')
    parser.add_argument('ground_truth', help='COCO json with ground truth')
    parser.add_argument('--score-thrs', type=float, nargs='+',
                        default=list(DEFAULT_SCORE_THRS))
    parser.add_argument('--iou-thr', type=float, default=0.5)
    parser.add_argument('--out', help='also write the result as json')
    args = parser.parse_args()
    try:
        q = pseudo_label_quality(args.pseudo_labels, args.ground_truth,
                                 args.score_thrs, args.iou_thr)
    except ValueError as e:
        raise SystemExit(str(e))
    print(f'{q["num_images"]} images, {q["gt_per_image"]:.2f} ground-truth '
          f'instances/image, median pseudo-label score '
          f'{q["median_score"]}, mask IoU >= {q["iou_thr"]}')
    print('score_thr  precision  recall  F1     per image')
    for r in q['sweep']:
        print(f'{r["score_thr"]:9.2f}  {r["precision"]:9.3f}  '
              f'{r["recall"]:6.3f}  {r["f1"]:.3f}  {r["per_image"]:9.2f}')
    print(f'best F1 at {q["best_f1_thr"]}')
    if args.out:
        atomic_dump_json(q, args.out, indent=1)


if __name__ == '__main__':
    main()
