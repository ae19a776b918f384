# Copyright (c) mmcast contributors. All rights reserved.
import json
import os.path as osp
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


def test_published_cityscapes_lists_ship_with_the_repository(repo_root,
                                                             tmp_path):
    """Guided Distillation's lists are tracked files of the repository, in
    the package (so an installed mmcast has them too), found by name by the
    library and the command line; the split they give is the list."""
    from mmcast.datasets.semi_split import (published_split_file,
                                            published_split_names)
    tracked = subprocess.run(
        ['git', 'ls-files', 'mmcast/datasets/splits'], cwd=repo_root,
        capture_output=True, text=True, check=True).stdout.split()
    counts = dict(perc_5=144, perc_10=296, perc_20=592, perc_30=888)
    assert published_split_names() == sorted(
        f'cityscapes/{k}' for k in counts)
    for name, count in counts.items():
        path = published_split_file(f'cityscapes/{name}')
        assert f'mmcast/datasets/splits/cityscapes/{name}.txt' in tracked
        with open(path) as f:
            lines = [ln.strip() for ln in f if ln.strip()]
        assert len(lines) == len(set(lines)) == count, name
        assert all(ln.endswith('_gtFine_instanceIds.png') for ln in lines)
    # a Cityscapes-like annotation file with the 10 % list's images and 2
    # others: the labeled part is exactly the listed ones
    with open(published_split_file('cityscapes/perc_10.txt')) as f:
        listed = [ln.strip() for ln in f if ln.strip()]
    stems = [n[:-len('_gtFine_instanceIds.png')] for n in listed] + [
        'aachen_999999_000001', 'aachen_999999_000002']
    images = [dict(id=i + 1, file_name=f'{s.split("_")[0]}/{s}_leftImg8bit.png',
                   height=8, width=16) for i, s in enumerate(stems)]
    anns = [dict(id=i + 1, image_id=i + 1, category_id=26, bbox=[0, 0, 2, 2],
                 area=4, iscrowd=0, segmentation=[[0, 0, 2, 0, 2, 2]])
            for i in range(len(images))]
    ann = tmp_path / 'instancesonly_filtered_gtFine_train.json'
    ann.write_text(json.dumps(dict(images=images, annotations=anns,
                                   categories=[dict(id=26, name='car')])))
    proc = subprocess.run(
        [sys.executable, 'tools/split_semi.py', str(ann), '--image-list',
         'cityscapes/perc_10', '--out-dir', str(tmp_path)], cwd=repo_root,
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    labeled = tmp_path / 'instancesonly_filtered_gtFine_train.1@perc_10.json'
    assert sorted(im['id'] for im in json.load(open(labeled))['images']) == \
        list(range(1, 297))
    with pytest.raises(FileNotFoundError, match='cityscapes/perc_10'):
        published_split_file('cityscapes/perc_15')


def test_the_command_that_writes_a_split_file(tmp_path):
    """What the preflight prints for a missing split file: the command of
    its name (a published list, a seeded draw, a count), and one that
    writes exactly that file."""
    from mmcast.datasets.semi_split import split_command

    semi = 'data/cityscapes/annotations/semi'
    stem = 'instancesonly_filtered_gtFine_train'
    assert split_command(f'{semi}/{stem}.1@perc_10-unlabeled.json') == (
        f'python tools/split_semi.py <{stem}.json> --image-list '
        f'cityscapes/perc_10 --out-dir {semi}')
    assert split_command('semi_anns/x.2@5.json', 'x.json') == (
        'python tools/split_semi.py x.json --percent 5 --seed 2 --out-dir '
        'semi_anns')
    assert split_command('a/x.3@n40.json').endswith(
        '--count 40 --seed 3 --out-dir a')
    assert split_command('a/x.json') is None
    assert split_command('a/x.1@perc_15.json') is None  # no such list
    ann = tmp_path / 'x.json'
    ann.write_text(json.dumps(_coco()))
    command = split_command(str(tmp_path / 'out' / 'x.1@25.json'), str(ann))
    words = command.split()
    proc = subprocess.run([sys.executable] + words[1:], capture_output=True,
                          text=True, cwd=osp.dirname(osp.dirname(__file__)))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / 'out' / 'x.1@25.json').is_file()
