# Copyright (c) mmcast contributors. All rights reserved.
"""The second toy world, objects on a table seen from above
(mmcast.toy.tabletop), and ``tools/cast_pipeline.py toy
--toy-world tabletop``."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from conftest import pipeline_of
from mmcast.apis.pipeline import PipelineError, RunSpec
from mmcast.apis.pipeline.data_preparation import (prepare_toy_data,
                                                   toy_data_current)
from mmcast.toy.cityscapes_layout import META_FILE
from mmcast.toy.scene import LABEL_IDS, THING_CLASSES
from mmcast.toy.tabletop import STORED_AS, TABLETOP_CLASSES
from mmcast.toy.worlds import make_toy_dataset

pytestmark = pytest.mark.filterwarnings(
    'ignore:__array__ implementation:DeprecationWarning')

SIZE = dict(num_train=30, num_val=4, height=96, width=192, seed=0)
STORED_AS_INV = {v: k for k, v in STORED_AS.items()}


def _instances(root: str, split: str = 'train'):
    """``(class name, visible mask, image)`` of every instance of a split."""
    from mmcv.transforms import LoadImageFromFile
    from mmdet.datasets import CityscapesDataset
    from mmdet.datasets.transforms import LoadAnnotations
    dataset = CityscapesDataset(
        data_root=root,
        ann_file=f'annotations/instancesonly_filtered_gtFine_{split}.json',
        data_prefix=dict(img=f'leftImg8bit/{split}/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=[
            dict(type=LoadImageFromFile),
            dict(type=LoadAnnotations, with_bbox=True, with_mask=True)
        ])
    out = []
    for i in range(len(dataset)):
        item = dataset[i]
        for label, mask in zip(item['gt_bboxes_labels'],
                               item['gt_masks'].masks):
            out.append((THING_CLASSES[label], mask.astype(bool), item['img']))
    return out


def _world(tmp_path_factory, world: str, style: str) -> str:
    root = str(tmp_path_factory.mktemp(f'{world}_{style}'))
    make_toy_dataset(root, show_progress=False, world=world, style=style,
                     **SIZE)
    return root


@pytest.fixture(scope='module')
def tabletop(tmp_path_factory) -> str:
    return _world(tmp_path_factory, 'tabletop', 'target')


@pytest.fixture(scope='module')
def tabletop_source(tmp_path_factory) -> str:
    return _world(tmp_path_factory, 'tabletop', 'source')


def test_draws_its_five_classes_and_only_them(tabletop):
    instances = _instances(tabletop)
    assert {name for name, _, _ in instances} == set(TABLETOP_CLASSES)
    assert len(TABLETOP_CLASSES) == 5 < len(THING_CLASSES)
    assert set(STORED_AS) == set(TABLETOP_CLASSES)
    with open(osp.join(tabletop, META_FILE)) as f:
        assert json.load(f)['world'] == 'tabletop'


def _orientation(mask: np.ndarray) -> float:
    """The angle (degrees, 0-180) of a mask's long axis."""
    ys, xs = np.nonzero(mask)
    cov = np.cov(np.stack([xs, ys]).astype(float))
    vals, vecs = np.linalg.eigh(cov)
    vx, vy = vecs[:, np.argmax(vals)]
    return float(np.degrees(np.arctan2(vy, vx)) % 180)


def test_objects_are_rotated_and_of_many_sizes(tabletop):
    instances = _instances(tabletop)
    pencils = [m for name, m, _ in instances
               if name == STORED_AS_INV['pencil'] and m.sum() >= 60]
    angles = sorted(_orientation(m) for m in pencils)
    assert len(angles) >= 4
    # long axes in every quarter of the half-turn: rotated, not upright
    assert len({int(a // 45) for a in angles}) == 4
    coins = [m for name, m, _ in instances if name == STORED_AS_INV['coin']]
    extents = [max(np.ptp(np.nonzero(m)[0]), np.ptp(np.nonzero(m)[1])) + 1
               for m in coins]
    assert max(extents) >= 3 * min(extents)


def _colour_only_accuracy(root: str) -> float:
    """Accuracy of the nearest class-mean colour (mean RGB of each
    instance; leave-one-out): how far colour alone names the class."""
    instances = _instances(root)
    names = np.array([name for name, _, _ in instances])
    colours = np.stack([img[m].mean(0) for _, m, img in instances])
    correct = 0
    for i in range(len(names)):
        keep = np.arange(len(names)) != i
        means = {c: colours[keep & (names == c)].mean(0)
                 for c in set(names[keep])}
        guess = min(means, key=lambda c: np.linalg.norm(colours[i] - means[c]))
        correct += guess == names[i]
    return correct / len(names)


def test_colour_alone_does_not_name_the_class(tabletop, tmp_path_factory):
    streets = _world(tmp_path_factory, 'streets', 'target')
    streets_acc, tabletop_acc = (_colour_only_accuracy(streets),
                                 _colour_only_accuracy(tabletop))
    # the bundled streets give each class its colour family; here the
    # families are shared, so shape and texture have to decide
    assert tabletop_acc < 0.6 < streets_acc
    assert streets_acc - tabletop_acc > 0.25


def test_source_corpus_is_domain_shifted(tabletop, tabletop_source):

    def table_and_sizes(root):
        areas = [m.sum() for _, m, _ in _instances(root)]
        with open(osp.join(root, 'annotations',
                           'instancesonly_filtered_gtFine_train.json')) as f:
            names = [i['file_name'] for i in json.load(f)['images']]
        table = []
        for name in names:
            png = osp.join(root, 'leftImg8bit', 'train', name)
            img = cv2.cvtColor(cv2.imread(png), cv2.COLOR_BGR2RGB)
            labels = cv2.imread(
                osp.join(root, 'gtFine', 'train', name).replace(
                    '_leftImg8bit.png', '_gtFine_labelIds.png'),
                cv2.IMREAD_UNCHANGED)
            table.append(img[labels == LABEL_IDS['road']].mean(0))
        return np.mean(table, 0), np.median(areas)

    (t_rgb, t_area), (s_rgb, s_area) = (table_and_sizes(tabletop),
                                        table_and_sizes(tabletop_source))
    assert t_rgb[0] > t_rgb[2] + 30  # warm wood
    assert s_rgb[2] > s_rgb[0] + 10  # cold tiles
    assert s_area > 1.2 * t_area  # bigger objects in the source corpus


def test_deterministic(tabletop, tmp_path):
    again = str(tmp_path / 'again')
    make_toy_dataset(again, show_progress=False, world='tabletop', **SIZE)
    for rel in ('annotations/instancesonly_filtered_gtFine_train.json',
                'lists/train.txt'):
        with open(osp.join(tabletop, rel), 'rb') as a, \
                open(osp.join(again, rel), 'rb') as b:
            assert a.read() == b.read()


def test_unknown_world_is_refused(tmp_path):
    with pytest.raises(ValueError, match="world must be one of.*'moon'"):
        make_toy_dataset(str(tmp_path / 'x'), world='moon', **SIZE)


def _pipeline(tmp_path, *extra: str) -> RunSpec:
    return pipeline_of('toy', '--work-dir', str(tmp_path / 'work'),
                       '--toy-sizes', '20', '2', '2', '--toy-image-size',
                       '64', '128', *extra).spec


def test_pipeline_world_has_its_own_folders_and_stages_read_them(tmp_path):
    streets = _pipeline(tmp_path, '--data-root', str(tmp_path / 'data'))
    world = _pipeline(tmp_path, '--data-root', str(tmp_path / 'data'),
                      '--toy-world', 'tabletop', '--toy-unlabeled', '30')
    assert osp.basename(world.toy.root) == 'toy_tabletop_u30'
    assert osp.basename(world.toy.source_root) == 'toy_tabletop_source'
    assert world.env['MMCAST_TOY_ROOT'] == world.toy.root + '/'
    prepare_toy_data(world)
    prepare_toy_data(streets)
    # the labeled images are the world's, with its classes only; the streets
    # beside it are untouched and keep all 8
    semi = osp.join('annotations', 'semi',
                    'instancesonly_filtered_gtFine_train.1@10')
    for pipeline, classes in ((world, set(TABLETOP_CLASSES)),
                              (streets, set(THING_CLASSES))):
        for root in (pipeline.toy.root, pipeline.toy.source_root):
            with open(osp.join(root, META_FILE)) as f:
                assert json.load(f).get('world', 'streets') == (
                    'tabletop' if pipeline is world else 'streets')
        with open(osp.join(pipeline.toy.root, 'annotations',
                           'instancesonly_filtered_gtFine_train.json')) as f:
            coco = json.load(f)
        by_id = {c['id']: c['name'] for c in coco['categories']}
        assert {by_id[a['category_id']]
                for a in coco['annotations']} <= classes
        assert osp.isfile(osp.join(pipeline.toy.root, semi + '.json'))
    assert toy_data_current(world.toy.source_root, world='tabletop')
    assert not toy_data_current(streets.toy.source_root, world='tabletop')


def test_pipeline_world_without_data_root_is_still_passed_on(tmp_path):
    world = _pipeline(tmp_path, '--toy-world', 'tabletop')
    assert world.env['MMCAST_TOY_ROOT'].endswith('/data/toy_tabletop/')


def test_pipeline_world_is_for_the_toy_data(tmp_path):
    with pytest.raises(PipelineError,
                       match='--toy-world is for the toy data'):
        pipeline_of('custom-cpu', '--work-dir', str(tmp_path / 'w'),
                    '--toy-world', 'tabletop')
