# Copyright (c) mmcast contributors. All rights reserved.
"""Guided Distillation's class-balanced repeat sampling of the labeled side.

The real-size GD configs wrap their labeled dataset (source 0 of the
``MultiSourceSampler``) in MMEngine's ``ClassBalancedDataset`` with GD's
threshold t = 10. Built from the configs on synthetic data in the real
layouts, every labeled image must be listed ``ceil(r(I))`` times, with
``r(I) = max over its classes c of max(1, sqrt(t / f(c)))`` and ``f(c)`` the
share of the labeled images holding c, computed here from the annotation
file alone; the sampler's labeled draw follows those counts.
"""
import collections
import copy
import json
import math
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT

GD_THRESHOLD = 10.0  # GD's repeat threshold
REAL_SIZE_GD = {
    'cityscapes': ('configs/mmcast/guided_distillation/'
                   'guided-distillation_dinov2-s_cityscapes.py',
                   'annotations/instancesonly_filtered_gtFine_train.json'),
    'coco': ('configs/mmcast/guided_distillation/'
             'guided-distillation_dinov2-s_coco.py',
             'annotations/instances_train2017.json'),
    'custom': ('configs/mmcast/custom/guided-distillation_dinov2-s_custom.py',
               'annotations/instances_train2017.json'),
}
ONE_PROCESS_GD = (
    'configs/mmcast/guided_distillation/guided-distillation_r18_toy.py',
    'configs/mmcast/custom/guided-distillation_r18_custom-cpu.py')


@pytest.fixture(scope='module')
def registered():
    from mmdet.utils import register_all_modules

    import mmcast  # noqa: F401
    register_all_modules(init_default_scope=True)


@pytest.fixture(scope='module')
def real_layout(tmp_path_factory):
    """Cityscapes and COCO layouts, 16 train images each."""
    from mmcast.testing.real_layout_data import write_real_layout_dataset
    out = tmp_path_factory.mktemp('gd_real_layout')
    return {ds: write_real_layout_dataset(ds, str(out), num_train=16,
                                          num_val=1)
            for ds in ('cityscapes', 'coco')}


def expected_repeats(ann_file: str, threshold: float) -> dict:
    """``ceil(r(I))`` per image id of a COCO file, images without
    annotations left out (``filter_empty_gt``)."""
    with open(ann_file) as f:
        coco = json.load(f)
    classes = collections.defaultdict(set)
    for ann in coco['annotations']:
        classes[ann['image_id']].add(ann['category_id'])
    images = [img['id'] for img in coco['images'] if classes[img['id']]]
    freq = collections.Counter(c for i in images for c in classes[i])
    r_class = {c: max(1.0, math.sqrt(threshold / (n / len(images))))
               for c, n in freq.items()}
    return {i: math.ceil(max(r_class[c] for c in classes[i])) for i in images}


def load_gd(ds: str, monkeypatch) -> Config:
    if ds == 'custom':  # the template's classes: COCO's, as the data
        from mmdet.datasets import CocoDataset
        monkeypatch.setenv('MMCAST_CUSTOM_CLASSES',
                           repr(CocoDataset.METAINFO['classes']))
    return Config.fromfile(osp.join(REPO_ROOT, REAL_SIZE_GD[ds][0]))


@pytest.mark.parametrize('ds', sorted(REAL_SIZE_GD))
def test_labeled_images_repeat_by_the_rarest_class(ds, real_layout,
                                                    registered, monkeypatch):
    from mmdet.registry import DATA_SAMPLERS, DATASETS

    cfg = load_gd(ds, monkeypatch)
    root = real_layout['cityscapes' if ds == 'cityscapes' else 'coco']
    ann_file = REAL_SIZE_GD[ds][1]
    concat = copy.deepcopy(cfg.train_dataloader.dataset)
    labeled, pool = concat.datasets
    assert labeled.type == 'ClassBalancedDataset'
    assert labeled.oversample_thr == GD_THRESHOLD
    # every train image is labeled here: more images, more class variety
    labeled.dataset.update(data_root=root, ann_file=ann_file)
    pool.update(data_root=root, ann_file=ann_file)
    if ds != 'cityscapes':
        for part in (labeled.dataset, pool):
            part.data_prefix = dict(img='train2017/')
    dataset = DATASETS.build(concat)
    balanced = dataset.datasets[0]

    want = expected_repeats(osp.join(root, ann_file), GD_THRESHOLD)
    listed = collections.Counter(
        balanced.get_data_info(i)['img_id'] for i in range(len(balanced)))
    assert listed == want
    assert len(set(want.values())) > 1  # some classes are rarer than others
    assert min(want.values()) >= math.ceil(math.sqrt(GD_THRESHOLD))
    assert dataset.cumulative_sizes[0] == sum(want.values())

    # the sampler's labeled draw (even positions at 1:1, batch 2): one pass
    # over its permutation lists each image ceil(r(I)) times
    sampler = DATA_SAMPLERS.build(
        dict(cfg.train_dataloader.sampler, dataset=dataset, seed=0))
    assert sampler.num_per_source == [1, 1]
    stream = iter(sampler)
    drawn = [next(stream) for _ in range(2 * len(balanced))][::2]
    assert all(i < len(balanced) for i in drawn)
    assert collections.Counter(
        balanced.get_data_info(i)['img_id'] for i in drawn) == want


@pytest.mark.parametrize('path', ONE_PROCESS_GD)
def test_one_process_gd_configs_draw_the_labeled_side_uniformly(path):
    cfg = Config.fromfile(osp.join(REPO_ROOT, path))
    labeled = cfg.train_dataloader.dataset.datasets[0]
    assert labeled.type != 'ClassBalancedDataset'
    assert 'ann_file' in labeled
