# Copyright (c) mmcast contributors. All rights reserved.
"""More unlabeled toy images for the same labeled ones: the split's
``labeled_pool`` and ``tools/cast_pipeline.py toy --toy-unlabeled N``."""
import json
import os.path as osp

import mmcv
import numpy as np
import pytest

from conftest import pipeline_of
from mmcast.apis.pipeline import PipelineError, RunSpec
from mmcast.apis.pipeline.data_preparation import prepare_toy_data
from mmcast.datasets.semi_split import split_coco


def _coco(num: int) -> dict:
    images = [dict(id=i, file_name=f'{i}.png', height=4, width=4)
              for i in range(num)]
    annotations = [dict(id=i, image_id=i, category_id=1, bbox=[0, 0, 1, 1],
                        area=1, iscrowd=0) for i in range(num)]
    return dict(images=images, annotations=annotations,
                categories=[dict(id=1, name='car')])


@pytest.mark.parametrize('pool', [10, 37])
def test_labeled_pool_keeps_the_draw_and_adds_unlabeled(pool):
    """The labeled draw among the first ``pool`` images is the draw of a
    dataset of those images alone; every later image is unlabeled."""
    alone = split_coco(_coco(pool), seed=1, percent=10)
    grown = split_coco(_coco(pool + 55), seed=1, percent=10,
                       labeled_pool=pool)
    assert grown['labeled_ids'] == alone['labeled_ids']
    assert len(grown['labeled_ids']) == max(1, round(pool / 10))
    unlabeled = {img['id'] for img in grown['unlabeled']['images']}
    assert unlabeled == set(range(pool + 55)) - set(grown['labeled_ids'])
    assert not grown['unlabeled']['annotations']
    assert {a['image_id'] for a in grown['labeled']['annotations']} == \
        set(grown['labeled_ids'])


def test_labeled_pool_out_of_range_is_refused():
    with pytest.raises(ValueError, match='labeled_pool must be in'):
        split_coco(_coco(5), seed=1, percent=10, labeled_pool=6)


def _pipeline(tmp_path, *extra: str) -> RunSpec:
    return pipeline_of('toy', '--work-dir', str(tmp_path / 'work'),
                       '--data-root', str(tmp_path / 'data'), '--toy-sizes',
                       '20', '2', '2', '--toy-image-size', '64', '128',
                       *extra).spec


def test_toy_unlabeled_grows_d_u_and_keeps_the_labeled_images(tmp_path):
    """``--toy-unlabeled 30`` on 20 train images (2 labeled): 12 more
    generated images, all unlabeled, in their own data root, which the
    stages are pointed at; the 2 labeled images are the very images the
    default split labels."""
    base, grown = _pipeline(tmp_path), _pipeline(tmp_path, '--toy-unlabeled',
                                                 '30')
    assert base.toy.extra_unlabeled == 0
    assert grown.toy.extra_unlabeled == 12
    assert osp.basename(grown.toy.root) == 'toy_u30'
    assert grown.toy.source_root == base.toy.source_root
    assert grown.env['MMCAST_TOY_ROOT'] == grown.toy.root + '/'
    parts = {}
    for spec in (base, grown):
        prepare_toy_data(spec)
        semi = osp.join(spec.toy.root, 'annotations', 'semi',
                        'instancesonly_filtered_gtFine_train.1@10')
        with open(semi + '.json') as f:
            labeled = json.load(f)
        with open(semi + '-unlabeled.json') as f:
            unlabeled = json.load(f)
        images = [mmcv.imread(osp.join(spec.toy.root, 'leftImg8bit',
                                       'train', img['file_name']))
                  for img in labeled['images']]
        parts[spec.toy.root] = (labeled, unlabeled, images)
    (lab0, unl0, img0), (lab1, unl1, img1) = parts.values()
    assert len(lab0['images']) == len(lab1['images']) == 2
    assert (len(unl0['images']), len(unl1['images'])) == (18, 30)
    assert [a['bbox'] for a in lab0['annotations']] == \
        [a['bbox'] for a in lab1['annotations']]
    assert all(np.array_equal(a, b) for a, b in zip(img0, img1))


def test_toy_unlabeled_below_the_split_is_refused(tmp_path):
    with pytest.raises(PipelineError, match='leaves 18 unlabeled already'):
        _pipeline(tmp_path, '--toy-unlabeled', '17')


def test_toy_unlabeled_is_for_the_toy_data(tmp_path):
    with pytest.raises(PipelineError, match='is for the toy data'):
        pipeline_of('custom-cpu', '--work-dir', str(tmp_path / 'w'),
                    '--toy-unlabeled', '500')
