# Copyright (c) mmcast contributors. All rights reserved.
import json
import subprocess
import sys

import pytest

from mmcast.datasets.semi_split import split_coco, write_split


def _coco(num_images: int = 20) -> dict:
    images = [dict(id=i + 1, file_name=f'city/city_000000_{i:06d}_leftImg8bit.png',
                   height=8, width=16) for i in range(num_images)]
    anns = [dict(id=10 * i + k, image_id=i + 1, category_id=26, bbox=[0, 0, 2, 2],
                 area=4, iscrowd=0, segmentation=[[0, 0, 2, 0, 2, 2]])
            for i in range(num_images) for k in range(2)]
    return dict(images=images, annotations=anns,
                categories=[dict(id=26, name='car')])


@pytest.fixture
def ann_file(tmp_path):
    path = tmp_path / 'instances_train.json'
    path.write_text(json.dumps(_coco()))
    return str(path)


def test_split_is_exact_complementary_and_reproducible(ann_file, tmp_path):
    paths = write_split(ann_file, str(tmp_path / 'a'), seed=3, percent=10)
    again = write_split(ann_file, str(tmp_path / 'b'), seed=3, percent=10)
    for key in paths:
        with open(paths[key], 'rb') as f1, open(again[key], 'rb') as f2:
            assert f1.read() == f2.read(), key
    labeled = json.load(open(paths['labeled']))
    unlabeled = json.load(open(paths['unlabeled']))
    lab_ids = {img['id'] for img in labeled['images']}
    unl_ids = {img['id'] for img in unlabeled['images']}
    assert len(lab_ids) == 2 and len(unl_ids) == 18
    assert lab_ids.isdisjoint(unl_ids) and len(lab_ids | unl_ids) == 20
    assert unlabeled['annotations'] == []
    assert {a['image_id'] for a in labeled['annotations']} == lab_ids
    assert len(labeled['annotations']) == 4
    ids = [int(x) for x in open(paths['ids']).read().split()]
    assert ids == sorted(lab_ids)
    assert paths['labeled'].endswith('instances_train.3@10.json')


def test_other_seed_other_split():
    coco = _coco(50)
    a = split_coco(coco, seed=1, percent=10)['labeled_ids']
    b = split_coco(coco, seed=2, percent=10)['labeled_ids']
    assert len(a) == len(b) == 5 and a != b


def test_count_and_image_list(ann_file, tmp_path):
    assert len(split_coco(_coco(), seed=1, count=7)['labeled_ids']) == 7
    listing = tmp_path / 'perc_x.txt'
    listing.write_text('city_000000_000003_gtFine_instanceIds.png\n'
                       'city_000000_000005_gtFine_instanceIds.png\n')
    paths = write_split(ann_file, str(tmp_path), image_list_file=str(listing))
    assert [int(x) for x in open(paths['ids']).read().split()] == [4, 6]


@pytest.mark.parametrize('percent', [0, -5, 100.5])
def test_bad_percent(percent):
    with pytest.raises(ValueError, match='percent must be in'):
        split_coco(_coco(), percent=percent)


def test_bad_inputs_name_the_problem(tmp_path, ann_file):
    with pytest.raises(FileNotFoundError, match='missing.json'):
        write_split(str(tmp_path / 'missing.json'), str(tmp_path), percent=10)
    with pytest.raises(ValueError, match='count must be in'):
        split_coco(_coco(), count=21)
    listing = tmp_path / 'l.txt'
    listing.write_text('nowhere_000000_000001_gtFine_instanceIds.png\n')
    with pytest.raises(ValueError, match='l.txt'):
        write_split(ann_file, str(tmp_path), image_list_file=str(listing))


def test_cli_error_message(repo_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, 'tools/split_semi.py', str(tmp_path / 'nope.json'),
         '--percent', '10'], cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'nope.json' in proc.stderr
    proc = subprocess.run(
        [sys.executable, 'tools/split_semi.py', str(tmp_path / 'nope.json'),
         '--percent', '150'], cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode != 0
