# Copyright (c) mmcast contributors. All rights reserved.
"""Tiny synthetic datasets in the on-disk layouts of the real benchmarks.

The real-size CAST configs read Cityscapes, ADE20K and COCO from fixed
paths. This module writes a few toy scenes (:mod:`mmcast.toy.streets`)
into exactly those layouts, with the datasets' real class lists, and the 10 %
semi-supervised split (seed 1) that :mod:`mmcast.datasets.semi_split` writes,
under the name the dataset config reads (Cityscapes: ``1@perc_10``, Guided
Distillation's published list, which these images are not in, so a 10 %
draw stands in for it), so that the configs run unchanged except for their
data root:

* ``cityscapes`` (8 thing classes): the toy generator's own Cityscapes layout
  (``leftImg8bit/``, ``gtFine/`` with the files ``CityScapesMetric`` reads,
  ``annotations/instancesonly_filtered_gtFine_{train,val}.json`` as
  MMDetection's converter writes them) and ``annotations/semi/``;
* ``ade20k`` (the 100 classes of ``ADE20KInstanceDataset``):
  ``images/{training,validation}/ADE_{train,val}_<8 digits>.jpg`` and
  ``ade20k_instance_{train,val}.json`` as MMDetection's
  ``ade20k2coco.py`` writes them (string image ids = file stems, RLE masks,
  integer boxes), and ``semi_anns/``;
* ``coco`` (80 classes, the official category ids):
  ``{train,val}2017/<12 digits>.jpg``, ``annotations/instances_{train,
  val}2017.json`` and ``semi_anns/``.

The toy scene's 8 street classes are spread over the dataset's classes:
instance class ``k`` of image ``i`` becomes class ``(k + 8 i) mod C``.
"""
import os
import os.path as osp
from typing import Callable, Dict, List, Sequence, Tuple

import cv2

from mmcast.datasets.semi_split import write_split
from mmcast.toy.cityscapes_layout import coco_annotations
from mmcast.toy.scene import LABEL_IDS, THING_CLASSES, scene_rng
from mmcast.toy.streets import render_scene
from mmcast.toy.worlds import make_toy_dataset
from mmcast.utils import atomic_dump_json

#: The data root of each dataset in ``configs/mmcast/_base_/datasets``.
DATA_ROOTS: Dict[str, str] = {
    'cityscapes': 'data/cityscapes/',
    'ade20k': 'data/ADEChallengeData2016/',
    'coco': 'data/coco/',
}
#: The official ids of the 80 COCO categories, in ``CocoDataset`` order.
COCO_CATEGORY_IDS: Tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
    23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
    46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64,
    65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88,
    89, 90)
SPLIT_SEED = 1
SPLIT_PERCENT = 10
_TOY_NAMES = {label_id: name for name, label_id in LABEL_IDS.items()}


def _write_coco_style(root: str, split: str, num: int, height: int,
                      width: int, seed: int, classes: Sequence[str],
                      category_ids: Sequence[int], img_dir: str,
                      ann_file: str, image_name: Callable[[int], str],
                      image_id: Callable[[int], object]) -> str:
    """Render ``num`` toy scenes as jpgs plus one COCO instance json."""
    images: List[dict] = []
    annotations: List[dict] = []
    for index in range(num):
        scene = render_scene(height, width,
                             scene_rng(seed, 'target', split, index))
        name = image_name(index)
        os.makedirs(osp.join(root, img_dir), exist_ok=True)
        cv2.imwrite(
            osp.join(root, img_dir, name),
            cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
        img_id = image_id(index)
        images.append(dict(id=img_id, file_name=name, height=height,
                           width=width))
        for anno in coco_annotations(scene.instance_ids):
            toy_class = THING_CLASSES.index(_TOY_NAMES[anno['category_id']])
            label = (toy_class + len(THING_CLASSES) * index) % len(classes)
            anno.update(
                id=len(annotations) + 1,
                image_id=img_id,
                iscrowd=0,
                category_id=category_ids[label],
                bbox=[round(v) for v in anno['bbox']])
            annotations.append(anno)
    coco = dict(
        images=images,
        annotations=annotations,
        categories=[
            dict(id=cat_id, name=name)
            for cat_id, name in zip(category_ids, classes)
        ])
    path = osp.join(root, ann_file)
    atomic_dump_json(coco, path)
    return path


def _split(train_json: str, out_dir: str,
           tag: str = f'{SPLIT_PERCENT}') -> Dict[str, str]:
    """The 10 % split (seed 1), named with ``tag`` as the dataset config
    names it (``'perc_10'``: the published list's name)."""
    paths = write_split(train_json, out_dir, seed=SPLIT_SEED,
                        percent=SPLIT_PERCENT)
    drawn, named = f'.{SPLIT_SEED}@{SPLIT_PERCENT}', f'.{SPLIT_SEED}@{tag}'
    for key, path in paths.items():
        base = osp.basename(path)
        paths[key] = osp.join(osp.dirname(path),
                              base.replace(drawn, named, 1))
        os.replace(path, paths[key])
    return paths


def write_cityscapes(root: str, num_train: int, num_val: int, height: int,
                     width: int, seed: int = 0) -> Dict[str, str]:
    """Cityscapes layout (toy generator) + ``annotations/semi`` split."""
    make_toy_dataset(root, num_train=num_train, num_val=num_val,
                     height=height, width=width, seed=seed,
                     show_progress=False)
    ann_dir = osp.join(root, 'annotations')
    return _split(
        osp.join(ann_dir, 'instancesonly_filtered_gtFine_train.json'),
        osp.join(ann_dir, 'semi'), 'perc_10')


def write_ade20k(root: str, num_train: int, num_val: int, height: int,
                 width: int, seed: int = 0) -> Dict[str, str]:
    """ADE20K instance layout of ``ade20k2coco.py`` + ``semi_anns`` split."""
    from mmdet.datasets import ADE20KInstanceDataset
    classes = ADE20KInstanceDataset.METAINFO['classes']
    jsons = {}
    for split, folder, num in (('train', 'training', num_train),
                               ('val', 'validation', num_val)):
        jsons[split] = _write_coco_style(
            root, split, num, height, width, seed, classes,
            list(range(len(classes))), osp.join('images', folder),
            f'ade20k_instance_{split}.json',
            lambda i, s=split: f'ADE_{s}_{i + 1:08d}.jpg',
            lambda i, s=split: f'ADE_{s}_{i + 1:08d}')
    return _split(jsons['train'], osp.join(root, 'semi_anns'))


def write_coco(root: str, num_train: int, num_val: int, height: int,
               width: int, seed: int = 0) -> Dict[str, str]:
    """COCO 2017 layout + ``semi_anns`` split."""
    from mmdet.datasets import CocoDataset
    classes = CocoDataset.METAINFO['classes']
    jsons = {}
    for split, num, offset in (('train', num_train, 1),
                               ('val', num_val, 100000)):
        jsons[split] = _write_coco_style(
            root, split, num, height, width, seed, classes,
            COCO_CATEGORY_IDS, f'{split}2017',
            osp.join('annotations', f'instances_{split}2017.json'),
            lambda i, o=offset: f'{i + o:012d}.jpg',
            lambda i, o=offset: i + o)
    return _split(jsons['train'], osp.join(root, 'semi_anns'))


WRITERS: Dict[str, Callable[..., Dict[str, str]]] = {
    'cityscapes': write_cityscapes,
    'ade20k': write_ade20k,
    'coco': write_coco,
}


def write_real_layout_dataset(dataset: str,
                              data_dir: str,
                              num_train: int = 4,
                              num_val: int = 2,
                              height: int = 64,
                              width: int = 128,
                              seed: int = 0) -> str:
    """Write a tiny ``dataset`` under ``data_dir`` at its config data root.

    Args:
        dataset (str): ``'cityscapes'``, ``'ade20k'`` or ``'coco'``.
        data_dir (str): Takes the place of the repository's root: the data
            go to ``<data_dir>/<DATA_ROOTS[dataset]>``.
        num_train (int): Train images (10 % of them, at least one, are
            labeled). Defaults to 4.
        num_val (int): Validation images. Defaults to 2.
        height (int): Image height. Defaults to 64.
        width (int): Image width. Defaults to 128.
        seed (int): Seed of the toy scenes. Defaults to 0.

    Returns:
        str: The data root, with a trailing ``/`` as in the configs.
    """
    if dataset not in WRITERS:
        raise ValueError(f'dataset must be one of {sorted(WRITERS)}, got '
                         f'{dataset!r}')
    root = osp.join(osp.abspath(data_dir), DATA_ROOTS[dataset])
    WRITERS[dataset](root, num_train, num_val, height, width, seed)
    return root
