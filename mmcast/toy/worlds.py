# Copyright (c) mmcast contributors. All rights reserved.
"""The toy worlds and the generator of a toy dataset.

:func:`make_toy_dataset` writes one of three worlds in the Cityscapes layout
(:mod:`.cityscapes_layout`), deterministically for a seed:

* ``'streets'`` (:mod:`.streets`): side views of the 8 Cityscapes thing
  classes on a road;
* ``'tabletop'`` (:mod:`.tabletop`): 5 other classes on a table, seen from
  above;
* ``'cells'`` (:mod:`.cells`): 50 to 200 touching cells of 2 classes,
  grayscale.

Each world has a ``'target'`` style and a domain-shifted ``'source'`` style
(a corpus for pre-training a stand-in "foundation" teacher).
"""
import os.path as osp
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from .cells import CELLS_CLASSES, DEFAULT_MAX_CELLS, render_cells_scene
from .cityscapes_layout import (COCO_JSON_TMPL, META_FILE, coco_annotations,
                                json_bytes, prepare_out_dir, prune_stale_files,
                                write_atomically, write_scene)
from .scene import (CATEGORIES, SPLIT_KEYS, SPLITS, STYLES, THING_CLASSES,
                    ToyScene, image_stems, scene_rng)
from .streets import render_scene
from .tabletop import TABLETOP_CLASSES, render_tabletop_scene

WORLDS: Tuple[str, ...] = ('streets', 'tabletop', 'cells')
MIN_IMAGE_SIZE = 32
MAX_CITIES = 8
# the generator's name in every toy dataset's meta file (the name it was
# first written under: data written before stays byte-identical)
GENERATOR = 'mmcast.datasets.toy_scenes'


def world_renderer(
        name: str) -> Tuple[Callable[..., ToyScene], Tuple[str, ...]]:
    """The scene renderer of a toy world and the labels it draws."""
    if name == 'streets':
        return render_scene, THING_CLASSES
    if name == 'tabletop':
        return render_tabletop_scene, TABLETOP_CLASSES
    if name == 'cells':
        return render_cells_scene, CELLS_CLASSES
    raise ValueError(f'world must be one of {WORLDS}, got {name!r}')


def world_max_instances(world: str) -> int:
    """The objects a toy world places per image at most, by default."""
    if world == 'cells':
        return DEFAULT_MAX_CELLS
    return 6


def make_toy_dataset(out_dir: str,
                     num_train: int = 200,
                     num_val: int = 50,
                     height: int = 96,
                     width: int = 192,
                     seed: int = 0,
                     style: str = 'target',
                     num_cities: int = 2,
                     num_test: int = 0,
                     max_instances: Optional[int] = None,
                     min_visible_px: int = 20,
                     show_progress: bool = True,
                     world: str = 'streets') -> Dict[str, dict]:
    """Generate a toy dataset in the Cityscapes layout.

    Args:
        out_dir (str): Dataset root (``data_root``).
        num_train (int): Number of train images (>= 1). Defaults to 200.
        num_val (int): Number of val images (>= 1). Defaults to 50.
        height (int): Image height (>= 32). Defaults to 96.
        width (int): Image width (>= 32). Defaults to 192.
        seed (int): Non-negative seed. Defaults to 0.
        style (str): ``'target'`` or ``'source'``. Defaults to ``'target'``.
        num_cities (int): Cities per split, 1 to 8. Defaults to 2.
        num_test (int): Number of test images (>= 0). MMDetection's
            converter CLI (``tools/dataset_converters/cityscapes.py``) asserts
            that a test split exists; give ``num_test > 0`` to run it as is.
            Defaults to 0.
        max_instances (int, optional): Objects placed per image: 1 to this
            (cells: a quarter of it to this). Defaults to 6 (cells: 200,
            :data:`~mmcast.toy.cells.DEFAULT_MAX_CELLS`).
        min_visible_px (int): Objects with fewer visible pixels are removed.
            Defaults to 20.
        show_progress (bool): Show an mmengine progress bar. Defaults to True.
        world (str): ``'streets'``, ``'tabletop'`` or ``'cells'`` (see the
            module docstring). Defaults to ``'streets'``.

    Returns:
        dict[str, dict]: Per written split: ``stems`` (list of str),
        ``ann_file`` (path of the COCO json), ``num_instances`` and
        ``class_counts`` (instances per class name).
    """
    counts = dict(train=num_train, val=num_val, test=num_test)
    if max_instances is None:
        max_instances = world_max_instances(world)
    for name, value in (('num_train', num_train), ('num_val', num_val),
                        ('max_instances', max_instances), ('num_cities',
                                                           num_cities)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f'{name} must be a positive integer, got '
                             f'{value!r}')
    for name, value in (('num_test', num_test), ('seed', seed),
                        ('min_visible_px', min_visible_px)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f'{name} must be a non-negative integer, got '
                             f'{value!r}')
    for name, value in (('height', height), ('width', width)):
        if not isinstance(value, (int, np.integer)) or value < MIN_IMAGE_SIZE:
            raise ValueError(f'{name} must be an integer >= {MIN_IMAGE_SIZE}, '
                             f'got {value!r}')
    if num_cities > MAX_CITIES:
        raise ValueError(f'num_cities must be at most {MAX_CITIES}, got '
                         f'{num_cities}')
    if style not in STYLES:
        raise ValueError(f'style must be one of {STYLES}, got {style!r}')
    render, classes = world_renderer(world)

    meta = dict(
        generator=GENERATOR,
        version=1,
        num_train=int(num_train),
        num_val=int(num_val),
        num_test=int(num_test),
        height=int(height),
        width=int(width),
        seed=int(seed),
        style=style,
        num_cities=int(num_cities),
        max_instances=int(max_instances),
        min_visible_px=int(min_visible_px),
        thing_classes=list(THING_CLASSES))
    if world != 'streets':  # (the bundled data's meta stays as it was)
        meta['world'] = world
    prepare_out_dir(out_dir, meta)

    progress = None
    if show_progress:
        from mmengine.utils import ProgressBar
        progress = ProgressBar(sum(counts.values()))
    expected = {META_FILE}
    summary: Dict[str, dict] = {}
    for split in SPLITS:
        num = counts[split]
        if num == 0:
            continue
        images, annotations = [], []
        class_counts = {name: 0 for name in THING_CLASSES}
        stems = image_stems(num, split, style, num_cities)
        offset = SPLIT_KEYS[split] * 3
        for index, (city, stem) in enumerate(stems):
            scene = render(
                height,
                width,
                scene_rng(seed, style, split, index),
                style=style,
                first_class=classes[(index + offset) % len(classes)],
                max_instances=max_instances,
                min_visible_px=min_visible_px)
            write_scene(out_dir, split, city, stem, scene)
            for suffix in ('leftImg8bit.png', ):
                expected.add(
                    osp.join('leftImg8bit', split, city, f'{stem}_{suffix}'))
            for suffix in ('instanceIds.png', 'labelIds.png', 'color.png',
                           'polygons.json'):
                expected.add(
                    osp.join('gtFine', split, city, f'{stem}_gtFine_{suffix}'))
            img_id = len(images)
            images.append(
                dict(
                    file_name=f'{city}/{stem}_leftImg8bit.png',
                    height=height,
                    width=width,
                    segm_file=f'{city}/{stem}_gtFine_labelIds.png',
                    id=img_id))
            for anno in coco_annotations(scene.instance_ids):
                anno['image_id'] = img_id
                anno['id'] = len(annotations)
                annotations.append(anno)
            for inst in scene.instances:
                class_counts[inst.label] += 1
            if progress is not None:
                progress.update()
        coco = dict(images=images, categories=CATEGORIES)
        if annotations:  # the converter drops an empty list
            coco['annotations'] = annotations
        ann_file = osp.join(out_dir, 'annotations',
                            COCO_JSON_TMPL.format(split))
        write_atomically(ann_file, json_bytes(coco))
        list_file = osp.join(out_dir, 'lists', f'{split}.txt')
        write_atomically(list_file,
                         ''.join(f'{stem}\n' for _, stem in stems).encode())
        expected.add(osp.relpath(ann_file, out_dir))
        expected.add(osp.relpath(list_file, out_dir))
        summary[split] = dict(
            stems=[stem for _, stem in stems],
            ann_file=ann_file,
            num_instances=len(annotations),
            class_counts=class_counts)
    if progress is not None:
        progress.file.write('\n')
    prune_stale_files(out_dir, expected)
    write_atomically(
        osp.join(out_dir, META_FILE),
        json_bytes(
            dict(
                meta,
                complete=True,
                num_instances={
                    k: v['num_instances']
                    for k, v in summary.items()
                })))
    return summary
