# Copyright (c) mmcast contributors. All rights reserved.
"""A toy world as a plain COCO dataset, the layout of your own data.

:func:`~mmcast.toy.worlds.make_toy_dataset` writes the toy worlds
in the Cityscapes layout the toy configs read. :func:`make_toy_coco_dataset`
writes the same scenes (same renderer, random streams and arguments) the way
``configs/mmcast/custom/custom_dataset.py`` expects a dataset of your own::

    <out>/images/<split>/<stem>.png
    <out>/annotations/instances_<split>.json   (RLE masks)

with the world's own class names (``cell`` / ``dividing`` for the cells,
``coin`` ... ``star`` for the tabletop, the Cityscapes names for the
streets) as categories 1, 2, ..., so that ``tools/cast_pipeline.py custom``
/ ``custom-cpu --data-root <out> --classes ...`` runs on it as on a user's
data.
"""
import os.path as osp
from typing import Dict, Optional, Tuple

from .cells import STORED_AS as CELLS_STORED_AS
from .cityscapes_layout import (coco_annotations, json_bytes, png_bytes,
                                write_atomically)
from .scene import LABEL_IDS, THING_CLASSES, image_stems, scene_rng
from .tabletop import STORED_AS as TABLETOP_STORED_AS
from .worlds import world_max_instances, world_renderer

# which class comes first in an image, by split (as make_toy_dataset draws)
_SPLIT_OFFSETS = {'train': 0, 'val': 3}


def world_class_names(world: str) -> Dict[str, str]:
    """The class name of each Cityscapes label a world draws."""
    if world == 'tabletop':
        return dict(TABLETOP_STORED_AS)
    if world == 'cells':
        return dict(CELLS_STORED_AS)
    return {name: name for name in THING_CLASSES}


def make_toy_coco_dataset(out_dir: str,
                          world: str = 'cells',
                          num_train: int = 20,
                          num_val: int = 5,
                          height: int = 96,
                          width: int = 128,
                          seed: int = 0,
                          style: str = 'target',
                          max_instances: Optional[int] = None,
                          min_visible_px: int = 20) -> Dict[str, dict]:
    """Write a toy world as a plain COCO dataset (see the module docstring).

    Args:
        out_dir (str): The dataset folder (``--data-root``).
        world (str): ``'cells'``, ``'tabletop'`` or ``'streets'``.
        num_train (int): Train images (>= 1). Defaults to 20.
        num_val (int): Val images (>= 1). Defaults to 5.
        height (int): Image height. Defaults to 96.
        width (int): Image width. Defaults to 128.
        seed (int): Non-negative seed. Defaults to 0.
        style (str): ``'target'`` or ``'source'``. Defaults to
            ``'target'``.
        max_instances (int, optional): Objects per image at most (default:
            the world's, :func:`~mmcast.toy.worlds.world_max_instances`).
        min_visible_px (int): Objects with fewer visible pixels are removed.

    Returns:
        dict[str, dict]: Per split: ``ann_file`` and ``num_instances``.
    """
    render, classes = world_renderer(world)
    names = world_class_names(world)
    if max_instances is None:
        max_instances = world_max_instances(world)
    for name, value in (('num_train', num_train), ('num_val', num_val)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be a positive integer, got '
                             f'{value!r}')
    # category ids 1, 2, ... in the world's class order
    category: Dict[int, Tuple[int, str]] = {}
    for label, name in names.items():
        category[LABEL_IDS[label]] = (len(category) + 1, name)
    summary = {}
    for split, num in (('train', num_train), ('val', num_val)):
        images, annotations = [], []
        for index, (_, stem) in enumerate(image_stems(num, split, style,
                                                      1)):
            scene = render(
                height, width, scene_rng(seed, style, split, index),
                style=style,
                first_class=classes[(index + _SPLIT_OFFSETS[split]) %
                                    len(classes)],
                max_instances=max_instances,
                min_visible_px=min_visible_px)
            name = f'{split}/{stem}.png'
            write_atomically(osp.join(out_dir, 'images', name),
                             png_bytes(scene.image))
            image_id = len(images) + 1
            images.append(dict(id=image_id, file_name=name, height=height,
                               width=width))
            for ann in coco_annotations(scene.instance_ids):
                if ann['iscrowd']:
                    continue
                ann.update(id=len(annotations) + 1, image_id=image_id,
                           category_id=category[ann['category_id']][0])
                annotations.append(ann)
        coco = dict(
            images=images, annotations=annotations,
            categories=[dict(id=i, name=n, supercategory='thing')
                        for i, n in sorted(category.values())])
        ann_file = osp.join(out_dir, 'annotations', f'instances_{split}.json')
        write_atomically(ann_file, json_bytes(coco))
        summary[split] = dict(ann_file=ann_file,
                              num_instances=len(annotations))
    return summary
