# Copyright (c) mmcast contributors. All rights reserved.
"""Write a seeded labeled / unlabeled split of a COCO-format annotation file.

Examples::

    # Cityscapes, 10 % labels, seed 1
    python tools/split_semi.py \
        data/cityscapes/annotations/instancesonly_filtered_gtFine_train.json \
        --percent 10 --seed 1 --out-dir data/cityscapes/semi_anns
    # the published Guided Distillation list instead of a draw (shipped in
    # mmcast/datasets/splits: cityscapes/perc_5, perc_10, perc_20, perc_30)
    python tools/split_semi.py ANN --image-list cityscapes/perc_10
    # COCO 1/2/5/10 %, several seeds
    for p in 1 2 5 10; do for s in 1 2 3; do
        python tools/split_semi.py data/coco/annotations/instances_train2017.json \
            --percent $p --seed $s --out-dir data/coco/semi_anns; done; done
"""
import argparse
import os.path as osp

from mmcast.datasets.semi_split import write_split


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('ann_file', help='COCO-format annotation json')
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--percent', type=float, help='labeled share, in (0, 100]')
    group.add_argument('--count', type=int, help='number of labeled images')
    group.add_argument(
        '--image-list',
        help='file naming the labeled images, or a published list shipped '
        'with mmcast by name (e.g. cityscapes/perc_10)')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument(
        '--out-dir', help='output folder (default: beside ann_file)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    out_dir = args.out_dir or osp.dirname(osp.abspath(args.ann_file))
    try:
        paths = write_split(args.ann_file, out_dir, args.seed, args.percent,
                            args.count, args.image_list)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise SystemExit(f'split_semi: error: {e}')
    for name, path in paths.items():
        print(f'{name}: {path}')


if __name__ == '__main__':
    main()
