# Copyright (c) mmcast contributors. All rights reserved.
"""Generate procedural toy street scenes in the Cityscapes layout.

Writes ``leftImg8bit/``, ``gtFine/`` (instanceIds, labelIds, color,
polygons) and ``annotations/instancesonly_filtered_gtFine_{train,val}.json``
(what MMDetection's ``tools/dataset_converters/cityscapes.py`` would write),
deterministically for a seed. See :mod:`mmcast.toy.worlds`.

Examples::

    # the target data (what the models are evaluated on)
    python tools/make_toy_dataset.py --out data/toy
    # the domain-shifted corpus for the stand-in foundation teacher
    python tools/make_toy_dataset.py --out data/toy_source --style source
    # the second world: objects on a table seen from above, and its corpus
    python tools/make_toy_dataset.py --out data/toy_tabletop --world tabletop
    python tools/make_toy_dataset.py --out data/toy_tabletop_source \
        --world tabletop --style source
    # the dense world: 50-200 touching cells per image, and its corpus
    python tools/make_toy_dataset.py --out data/toy_cells --world cells
    python tools/make_toy_dataset.py --out data/toy_cells_source \
        --world cells --style source
    # a world in the plain COCO layout of your own data (images/,
    # annotations/instances_{train,val}.json, its own class names), for
    # tools/cast_pipeline.py custom-cpu --data-root data/cells
    python tools/make_toy_dataset.py --out data/cells --world cells \
        --layout coco --num-train 40 --num-val 8 --height 96 --width 128
    # tiny, for tests
    python tools/make_toy_dataset.py --out /tmp/toy --num-train 6 \
        --num-val 4 --height 64 --width 128
"""
import argparse
import sys
from typing import List, Optional

from mmcast.toy.coco_layout import make_toy_coco_dataset
from mmcast.toy.scene import STYLES
from mmcast.toy.worlds import (MAX_CITIES, MIN_IMAGE_SIZE, WORLDS,
                               make_toy_dataset)


def _int_at_least(minimum: int, what: str):

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected an integer, got '
                                             f'{text!r}')
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be {what}, got {value}')
        return value

    return parse


def _num_cities(text: str) -> int:
    value = _int_at_least(1, 'a positive integer')(text)
    if value > MAX_CITIES:
        raise argparse.ArgumentTypeError(
            f'must be at most {MAX_CITIES}, got {value}')
    return value


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    positive = _int_at_least(1, 'a positive integer')
    non_negative = _int_at_least(0, 'a non-negative integer')
    size = _int_at_least(MIN_IMAGE_SIZE, f'an integer >= {MIN_IMAGE_SIZE}')
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        '--out', default='data/toy', help='dataset root to write')
    parser.add_argument('--num-train', type=positive, default=200)
    parser.add_argument('--num-val', type=positive, default=50)
    parser.add_argument(
        '--num-test',
        type=non_negative,
        default=0,
        help='test images (MMDetection\'s converter CLI needs a test split)')
    parser.add_argument('--height', type=size, default=96)
    parser.add_argument('--width', type=size, default=192)
    parser.add_argument('--seed', type=non_negative, default=0)
    parser.add_argument(
        '--style',
        choices=STYLES,
        default='target',
        help='"target": the evaluation domain; "source": the domain-shifted '
        'corpus of the stand-in foundation teacher')
    parser.add_argument(
        '--world',
        choices=WORLDS,
        default='streets',
        help='"streets": the bundled street scenes (8 classes, side view); '
        '"tabletop": 5 other classes on a table seen from above '
        '(mmcast.toy.tabletop); "cells": 50 to 200 touching cells of 2 '
        'classes per image, grayscale (mmcast.toy.cells)')
    parser.add_argument(
        '--layout',
        choices=('cityscapes', 'coco'),
        default='cityscapes',
        help='"cityscapes": the layout the toy configs read; "coco": '
        'images/<split>/ and annotations/instances_<split>.json with the '
        'world\'s class names, the layout of your own data (train and val '
        'only)')
    parser.add_argument(
        '--cities', type=_num_cities, default=2, help='cities per split')
    parser.add_argument(
        '--max-instances',
        type=positive,
        default=None,
        help='objects placed per image: 1 to this (cells: a quarter of it '
        'to this); default 6 (cells: 200)')
    parser.add_argument(
        '--min-visible-px',
        type=non_negative,
        default=20,
        help='objects with fewer visible pixels are removed')
    parser.add_argument(
        '--no-progress', action='store_true', help='hide the progress bar')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    try:
        write(args)
    except KeyboardInterrupt:  # Ctrl-C: one line, exit 130
        if not args.no_progress:
            print(flush=True)  # end the progress bar's line
        print(f'interrupted: {args.out} is incomplete (nothing of it is '
              'reused); run the same command to write it again',
              file=sys.stderr)
        raise SystemExit(130)


def write(args: argparse.Namespace) -> None:
    if args.layout == 'coco':
        try:
            summary = make_toy_coco_dataset(
                args.out, world=args.world, num_train=args.num_train,
                num_val=args.num_val, height=args.height, width=args.width,
                seed=args.seed, style=args.style,
                max_instances=args.max_instances,
                min_visible_px=args.min_visible_px)
        except ValueError as e:
            raise SystemExit(f'make_toy_dataset: error: {e}')
        for split, info in summary.items():
            print(f'{split}: {info["num_instances"]} instances -> '
                  f'{info["ann_file"]}')
        return
    try:
        summary = make_toy_dataset(
            args.out,
            num_train=args.num_train,
            num_val=args.num_val,
            height=args.height,
            width=args.width,
            seed=args.seed,
            style=args.style,
            num_cities=args.cities,
            num_test=args.num_test,
            max_instances=args.max_instances,
            min_visible_px=args.min_visible_px,
            show_progress=not args.no_progress,
            world=args.world)
    except (FileExistsError, ValueError) as e:
        raise SystemExit(f'make_toy_dataset: error: {e}')
    for split, info in summary.items():
        print(f'{split}: {len(info["stems"])} images, '
              f'{info["num_instances"]} instances -> {info["ann_file"]}')
    sys.stdout.flush()


if __name__ == '__main__':
    main()
