# Copyright (c) mmcast contributors. All rights reserved.
"""The dense toy world (cells) and the toy worlds in the plain COCO layout.

An image of the cells world holds 50 to 200 cells of two classes at
96x128, grayscale, touching (neighbouring pixels of two cells), each a
disjoint mask of at least ``min_visible_px`` pixels, the same for a seed;
the source style is another look. ``make_toy_dataset`` writes it in the
Cityscapes layout (``--world cells``) and in the plain COCO layout of your
own data (``--layout coco``: images/, annotations/instances_<split>.json,
the world's class names), which ``tools/cast_pipeline.py custom`` reads;
``--toy-world cells`` selects it for the toy pipeline.
"""
import json
import os.path as osp

import cv2
import numpy as np

from conftest import REPO_ROOT, load_script
from mmcast.datasets.instance_statistics import instance_statistics
from mmcast.toy.cells import render_cells_scene
from mmcast.toy.worlds import make_toy_dataset


def _touching_pairs(instance_ids: np.ndarray) -> int:
    """Pairs of different cells that share a pixel border."""
    pairs = set()
    for a, b in ((instance_ids[:, :-1], instance_ids[:, 1:]),
                 (instance_ids[:-1], instance_ids[1:])):
        both = (a >= 1000) & (b >= 1000) & (a != b)
        pairs |= {tuple(sorted(p)) for p in zip(a[both], b[both])}
    return len(pairs)


def test_an_image_holds_50_to_200_touching_grayscale_cells():
    counts, labels = [], set()
    for seed in range(12):
        scene = render_cells_scene(96, 128, np.random.default_rng(seed))
        counts.append(len(scene.instances))
        labels |= {inst.label for inst in scene.instances}
        image = scene.image.astype(int)
        assert (image[..., 0] == image[..., 1]).all()
        assert (image[..., 1] == image[..., 2]).all()
        masks = np.stack([inst.mask for inst in scene.instances])
        assert masks.sum(0).max() == 1  # disjoint
        assert masks.sum((1, 2)).min() >= 20
        for inst in scene.instances:
            assert (scene.instance_ids[inst.mask] == inst.instance_id).all()
        assert _touching_pairs(scene.instance_ids) > len(scene.instances)
    assert min(counts) >= 50 and max(counts) <= 200
    assert max(counts) - min(counts) > 50
    assert labels == {'person', 'rider'}  # a cell, a dividing cell
    again = render_cells_scene(96, 128, np.random.default_rng(3))
    assert (again.image == render_cells_scene(
        96, 128, np.random.default_rng(3)).image).all()
    source = render_cells_scene(96, 128, np.random.default_rng(3),
                                style='source')
    # fluorescence-like: a dark background, fewer (larger) cells
    background = [s.image[s.instance_ids < 1000].mean()
                  for s in (source, again)]
    assert background[0] < 100 < background[1]
    assert len(source.instances) < len(again.instances)
    # a small image has room for fewer
    assert len(render_cells_scene(32, 32, np.random.default_rng(0),
                                  max_instances=200).instances) <= 32 * 32 \
        // 40


def test_cityscapes_layout_of_the_cells(tmp_path):
    summary = make_toy_dataset(str(tmp_path), num_train=2, num_val=1,
                               height=64, width=96, world='cells',
                               show_progress=False)
    with open(tmp_path / 'toy_meta.json') as f:
        meta = json.load(f)
    assert meta['world'] == 'cells' and meta['max_instances'] == 200
    stats = instance_statistics(summary['train']['ann_file'])
    assert stats.num_images == 2 and stats.max >= 50
    assert summary['train']['class_counts']['rider'] >= 1


def test_plain_coco_layout_from_the_command_line(tmp_path, capsys):
    tool = load_script(osp.join(REPO_ROOT, 'tools', 'make_toy_dataset.py'))
    tool.main(['--out', str(tmp_path), '--world', 'cells', '--layout',
               'coco', '--num-train', '3', '--num-val', '2', '--height',
               '64', '--width', '96'])
    assert 'instances_val.json' in capsys.readouterr().out
    for split, num in (('train', 3), ('val', 2)):
        path = tmp_path / 'annotations' / f'instances_{split}.json'
        with open(path) as f:
            coco = json.load(f)
        assert [(c['id'], c['name']) for c in coco['categories']] == \
            [(1, 'cell'), (2, 'dividing')]
        assert len(coco['images']) == num
        assert {a['category_id'] for a in coco['annotations']} <= {1, 2}
        for image in coco['images']:
            assert image['file_name'].startswith(f'{split}/')
            img = cv2.imread(str(tmp_path / 'images' / image['file_name']))
            assert img.shape == (64, 96, 3)
        assert instance_statistics(str(path), ('cell', 'dividing')).max \
            >= 50
    # the same scenes as the Cityscapes layout
    make_toy_dataset(str(tmp_path / 'cs'), num_train=3, num_val=2,
                     height=64, width=96, world='cells', num_cities=1,
                     show_progress=False)
    with open(tmp_path / 'cs' / 'annotations' /
              'instancesonly_filtered_gtFine_train.json') as f:
        cityscapes = json.load(f)
    with open(tmp_path / 'annotations' / 'instances_train.json') as f:
        coco = json.load(f)
    assert len(cityscapes['annotations']) == len(coco['annotations'])


def test_the_pipeline_selects_the_world():
    from mmcast.apis.pipeline import parse_args
    args = parse_args(['toy', '--work-dir', 'w', '--toy-world', 'cells'])
    assert args.toy_world == 'cells'
