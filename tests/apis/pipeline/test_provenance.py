# Copyright (c) mmcast contributors. All rights reserved.
"""A results table that is never stale (:mod:`~mmcast.apis.pipeline.
provenance`): a finished stage records what it was made from; a stage redone
gets its new row, every stage made from it is made again with one line
saying why, the others are kept; another torch counts as a changed
input; a moved checkout keeps its stages; a grown annotation file draws its
split again.

The stages' own processes are replaced by a writer of what MMEngine leaves
in a work dir (``conftest.run_writing``): the planning, the runner's
decisions, the completion records and the results rows are the real
ones."""
import glob
import json
import os
import os.path as osp
import shutil

import pytest
import torch

from conftest import pipeline_of, run_writing
from mmcast.apis.pipeline import Planner
from mmcast.apis.pipeline.data_preparation import (split_outdated,
                                                   split_source_record)
from mmcast.datasets.semi_split import write_split
from mmcast.utils.atomic_io import atomic_dump_json
from mmcast.utils.stage_state import COMPLETION_FILE


@pytest.fixture(autouse=True)
def _pinned(pinned_code):
    """mmcast's code as this module's runs see it: its own copy."""


def test_a_redone_stage_refreshes_its_row_and_redoes_what_follows(
        tmp_path, capsys):
    pipeline = pipeline_of(
        'toy', '--work-dir', str(tmp_path / 'w'), '--data-root',
        str(tmp_path / 'data'), '--iters', 'pretrain=2', '1a=2', '1b=2',
        '2=2', '3=2', '--progress-interval', '1000')
    ran, first, _ = run_writing(pipeline, capsys)
    assert 'finetune' in ran and 'distill' in ran
    ran, again, out = run_writing(pipeline, capsys)
    assert ran == [] and again == first and 'trained again' not in out
    record = json.load(open(tmp_path / 'w' / 'seed0' / 'finetune' /
                            COMPLETION_FILE))
    assert '<work_dir>/seed0/distill/iter_2.pth' in record['inputs']
    assert record['seed'] == 0 and record['resumed_from'] is None
    assert record['device'] == 'cpu'

    # the user deletes stage 2 to redo it
    shutil.rmtree(tmp_path / 'w' / 'seed0' / 'distill')
    ran, third, out = run_writing(pipeline, capsys)
    assert ran == ['distill', 'finetune'], ran
    assert third['distill']['segm_AP'] != first['distill']['segm_AP']
    assert third['finetune']['segm_AP'] != first['finetune']['segm_AP']
    assert third['supervised_student'] == first['supervised_student']
    assert ('[seed 0] [stage 3] is made again: made from [seed 0] '
            '[stage 2], which is made again\n' in out), out
    with open(tmp_path / 'w' / 'seed0' / 'results.json') as f:
        assert json.load(f)['distill'] == third['distill']

    # a stage made with another torch
    path = tmp_path / 'w' / 'seed0' / 'supervised_student' / COMPLETION_FILE
    record = json.load(open(path))
    assert record['versions']['torch'] == torch.__version__
    record['versions']['torch'] = '0.0.1'
    atomic_dump_json(record, str(path))
    ran, _, out = run_writing(pipeline, capsys)
    assert ran == ['supervised_student'], ran
    assert (f'[seed 0] [baseline] is made again: torch 0.0.1 → '
            f'{torch.__version__}\n') in out, out



def test_a_moved_checkout_keeps_its_stages_while_its_data_holds(
        tmp_path, capsys, monkeypatch):
    """The checkout (its ``data/``) is moved, or a second clone drives the
    same work dir: its stages are kept while the files hold the same bytes;
    an edited annotation file still trains its readers again."""
    from mmcast.apis.pipeline import provenance

    def checkout(name):
        root = tmp_path / name
        monkeypatch.setattr(provenance, 'REPO_ROOT', str(root))
        return pipeline_of(
            'toy', '--work-dir', str(tmp_path / 'w'), '--data-root',
            str(root / 'data'), '--iters', 'pretrain=2', '1a=2', '1b=2',
            '2=2', '3=2', '--progress-interval', '1000'), root / 'data'

    _, data = checkout('clone1')
    labeled = data / 'toy' / 'annotations' / 'semi' / \
        'instancesonly_filtered_gtFine_train.1@10.json'
    source = data / 'toy_source' / 'annotations' / \
        'instancesonly_filtered_gtFine_train.json'
    for path in (labeled, source):
        path.parent.mkdir(parents=True)
        _coco(path, range(4))
    ran, first, _ = run_writing(checkout('clone1')[0], capsys)
    assert 'supervised_student' in ran and 'teacher_pretrained' in ran
    record = json.load(open(tmp_path / 'w' / 'seed0' / 'supervised_student'
                            / COMPLETION_FILE))
    assert '<repo>/data/toy/annotations/semi/' \
        'instancesonly_filtered_gtFine_train.1@10.json' in record['inputs']

    shutil.move(str(tmp_path / 'clone1'), str(tmp_path / 'clone2'))
    pipeline, data = checkout('clone2')
    ran, again, out = run_writing(pipeline, capsys)
    assert ran == [] and 'trained again' not in out, out
    assert again == first

    _coco(data / 'toy' / 'annotations' / 'semi' /
          'instancesonly_filtered_gtFine_train.1@10.json', range(5))
    ran, _, out = run_writing(pipeline, capsys)
    assert 'supervised_student' in ran and 'toy_foundation' not in ran, ran
    assert ('[seed 0] [baseline] is made again: <repo>/data/toy/'
            'annotations/semi/instancesonly_filtered_gtFine_train.1@10.json '
            'changed since it was made' in out), out

def _coco(path, ids) -> str:
    atomic_dump_json(dict(
        images=[dict(id=i, file_name=f'{i}.png', height=8, width=8)
                for i in ids],
        annotations=[dict(id=i, image_id=i, category_id=1, area=4,
                          bbox=[0, 0, 2, 2], iscrowd=0,
                          segmentation=[[0, 0, 2, 0, 2, 2]]) for i in ids],
        categories=[dict(id=1, name='a')]), str(path))
    return str(path)


def test_a_split_follows_its_annotation_file(tmp_path):
    train = _coco(tmp_path / 'train.json', range(12))
    paths = write_split(train, str(tmp_path), 1, 25.0)
    atomic_dump_json(dict(source=train, sha256='x'),
                     split_source_record(paths['labeled']))
    assert split_outdated(train, paths['labeled'], paths['unlabeled']) \
        .endswith('(0 images added, 0 removed)')
    _coco(tmp_path / 'train.json', range(20))
    os.remove(split_source_record(paths['labeled']))  # an older split
    assert split_outdated(train, paths['labeled'], paths['unlabeled']) == \
        'is out of date: train.json changed since it was drawn (8 images ' \
        'added, 0 removed)'
    _coco(tmp_path / 'train.json', range(12))
    assert split_outdated(train, paths['labeled'], paths['unlabeled']) is None


def test_a_resumed_stage_says_so_in_its_row_and_the_table(tmp_path, capsys):
    from mmcast.evaluation import write_results_table
    pipeline = pipeline_of(
        'toy', '--work-dir', str(tmp_path / 'w'), '--data-root',
        str(tmp_path / 'data'), '--methods', 'gd', '--iters', '2=2', '3=2',
        '--progress-interval', '1000')
    plan = Planner(pipeline.spec, pipeline.loader).plan()
    baseline = plan.seed_stage(0, 'supervised_student')
    # a run stopped after iteration 2 of 4, with the config of this run
    os.makedirs(baseline.work_dir)
    torch.save(dict(state_dict={}), osp.join(baseline.work_dir, 'iter_2.pth'))
    with open(osp.join(baseline.work_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(baseline.work_dir, 'iter_2.pth'))
    cfg = pipeline.loader.load(baseline)
    cfg.work_dir = baseline.work_dir
    cfg.dump(osp.join(baseline.work_dir, osp.basename(baseline.config)))
    ran, rows, out = run_writing(pipeline, capsys)
    assert ran == ['supervised_student', 'guided_distillation'], ran
    assert '(resumed from iter_2.pth)' in out
    assert rows['supervised_student']['resumed_from'] == 2
    assert rows['supervised_student']['resumed_on'] == 'cpu'  # no GPU here
    # the processor it was made on, in its record and its row
    from mmcast.apis.pipeline.provenance import machine_name
    record = json.load(open(osp.join(baseline.work_dir, COMPLETION_FILE)))
    assert record['machine'] == rows['supervised_student']['machine'] == \
        machine_name() and machine_name().endswith(
            f', {len(os.sched_getaffinity(0))} CPUs')
    assert 'resumed_from' not in rows['guided_distillation']
    write_results_table({0: rows}, str(tmp_path), 'toy', 'CAST')
    table = (tmp_path / 'results.md').read_text()
    assert 'resumed after a stop: student, labels only (baseline) (seed 0) ' \
        'at iteration 2 on a CPU (on a CPU a resumed stage ends bit for bit ' \
        'as the run it continues' in table, table


def test_the_pipeline_draws_a_grown_split_again(tmp_path, capsys):
    from mmcast.apis.pipeline.data_preparation import prepare_custom_split
    data = tmp_path / 'data'
    (data / 'annotations').mkdir(parents=True)
    train = _coco(data / 'annotations' / 'instances_train.json', range(12))
    pipeline = pipeline_of('custom-cpu', '--work-dir', str(tmp_path / 'w'),
                           '--data-root', str(data), '--classes', 'a')
    assert prepare_custom_split(pipeline.loader, dry=False) == []
    assert 'split is missing: writing it' in capsys.readouterr().out
    assert prepare_custom_split(pipeline.loader, dry=False) == []
    assert capsys.readouterr().out == ''  # current: nothing to say
    _coco(train, range(20))
    prepare_custom_split(pipeline.loader, dry=False)
    out = capsys.readouterr().out
    assert 'split is out of date: instances_train.json changed since it ' \
        'was drawn (8 images added, 0 removed): writing it' in out, out
    drawn = set()
    for path in glob.glob(str(data / 'annotations' / '**' / '*.json'),
                          recursive=True):
        if '@' in path and not path.endswith('.source.json'):
            drawn |= {img['id'] for img in json.load(open(path))['images']}
    assert drawn == set(range(20))
