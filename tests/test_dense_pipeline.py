# Copyright (c) mmcast contributors. All rights reserved.
"""The pipeline on dense data: the capacity from the data, in every stage.

For your own dataset with 150 instances in every image, the preflight
prints the instances per image of D_l and val, chooses 190 (the next
multiple of 10 at or above 1.25 x 150) and says why, and every stage config
of the plan (student, teacher, pseudo-label filter, evaluator) has it; a
shipped dataset's D_l denser than its configs gets one note (the dense toy
world's, not the streets'), and ``--max-instances`` sets the capacity of
any dataset. The whole ``custom-cpu`` pipeline runs on the dense toy world
in the COCO layout (8 train / 2 val images of 50 to 200 cells, 1 iteration
per stage): the configs MMEngine dumped in every stage's work dir, the
checkpoints and the pseudo-labels have the capacity, and the published and
exported student carry it.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from conftest import REPO_ROOT, load_script, pipeline_of
from mmcast.apis.pipeline.instance_capacity import (EVALUATOR, QUERIES,
                                                    capacity_keys,
                                                    config_capacity)
from mmcast.apis.pipeline import CASTPipeline
from mmcast.apis.pipeline.data_preparation import prepare_toy_data
from mmcast.datasets.instance_statistics import (CAPACITY_MARGIN,
                                                 capacity_for,
                                                 instance_statistics)

pytestmark = pytest.mark.slow_fixture(9)

PIPELINE = osp.join(REPO_ROOT, 'tools', 'cast_pipeline.py')
# the stages of a custom-cpu run, by work dir (relative to the run's)
STAGE_DIRS = ('teacher_standin', 'seed0/adapt_teacher',
              'seed0/adapt_teacher_selftrain', 'seed0/distill',
              'seed0/finetune', 'seed0/supervised_student')


def write_dense_dataset(root: str, per_image: int = 150, num_train: int = 8,
                        num_val: int = 2) -> None:
    """Plain COCO data of one class, ``per_image`` touching 8x8 squares in
    every 96x128 image."""
    from pycocotools import mask as mask_util
    image_id = 1
    for split, num in (('train', num_train), ('val', num_val)):
        os.makedirs(osp.join(root, 'images', split), exist_ok=True)
        images, anns = [], []
        for _ in range(num):
            name = f'{split}/{image_id:04d}.png'
            image = np.full((96, 128, 3), 200, np.uint8)
            for k in range(per_image):
                y, x = (k // 16) * 8, (k % 16) * 8
                mask = np.zeros((96, 128), np.uint8)
                mask[y:y + 8, x:x + 8] = 1
                image[mask > 0] = 60 + (k % 7) * 20
                rle = mask_util.encode(np.asfortranarray(mask))
                anns.append(dict(
                    id=len(anns) + 1, image_id=image_id, category_id=1,
                    iscrowd=0, area=64.,
                    bbox=mask_util.toBbox(rle).tolist(),
                    segmentation=dict(size=rle['size'],
                                      counts=rle['counts'].decode())))
            cv2.imwrite(osp.join(root, 'images', name), image)
            images.append(dict(id=image_id, file_name=name, height=96,
                               width=128))
            image_id += 1
        os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
        with open(osp.join(root, 'annotations', f'instances_{split}.json'),
                  'w', encoding='utf-8') as f:
            json.dump(dict(images=images, annotations=anns,
                           categories=[dict(id=1, name='cell')]), f)


def _stage_caps(cfg) -> dict:
    """``{(kind, teacher): {values}}`` of a stage config."""
    caps = {}
    for key in capacity_keys(cfg):
        caps.setdefault((key.kind, key.teacher), set()).add(key.value)
    return caps


def test_dense_custom_data_give_every_stage_their_capacity(
        tmp_path, capsys, monkeypatch):
    root = str(tmp_path / 'dense')
    write_dense_dataset(root)
    pipeline = pipeline_of(
        'custom-cpu', '--data-root', root, '--classes', 'cell',
        '--work-dir', str(tmp_path / 'work'), '--percent', '25', '--dry-run')
    pipeline.run()
    printed = capsys.readouterr().out
    assert 'instances per image, D_l: ' in printed
    assert ('instances_train.json: 8 images, instances per image: max 150, '
            '99th percentile 150, mean 150.0 (D_l is not written yet: the '
            'file it is split from)') in printed
    assert ('instances per image, val: ' + root + '/annotations/'
            'instances_val.json: 2 images, instances per image: max 150, '
            '99th percentile 150, mean 150.0') in printed
    assert ('capacity: 190 instances per image, for every stage\'s '
            'queries, kept detections, pseudo-labels and evaluator: the '
            'next multiple of 10 at or above 1.25 x 150') in printed
    assert '--max-instances N sets another' in printed
    monkeypatch.chdir(REPO_ROOT)
    stages = pipeline.plan().stages
    assert {s.key for s in stages} == {
        'teacher_standin', 'teacher_pretrained', 'adapt_teacher',
        'adapt_teacher_selftrain', 'distill', 'finetune',
        'supervised_student'}
    needed = CAPACITY_MARGIN * 150
    for stage in stages:
        cfg = pipeline.loader.load(stage)
        caps = _stage_caps(cfg)
        assert all(min(v) >= needed for v in caps.values()), stage.key
        assert config_capacity(cfg) == 190, stage.key
        assert (QUERIES, False) in caps and (EVALUATOR, False) in caps
    distill = pipeline.loader.load(
        next(s for s in stages if s.key == 'distill'))
    # student, teacher, filter and evaluator
    assert set(_stage_caps(distill)) == {
        ('queries', False), ('kept detections', False), ('queries', True),
        ('kept detections', True), ('pseudo-labels', False),
        ('evaluator', False)}


def _toy_pipeline(tmp_path, world: str, *extra: str) -> CASTPipeline:
    """A toy run on small generated data of ``world`` (the data made as
    the run makes them)."""
    pipeline = pipeline_of(
        'toy', '--work-dir', str(tmp_path / f'work_{world}'), '--data-root',
        str(tmp_path / 'data'), '--toy-world', world, '--toy-sizes', '20',
        '2', '2', '--toy-image-size', '96', '128', *extra)
    prepare_toy_data(pipeline.spec)
    return pipeline


def test_a_shipped_dataset_denser_than_its_configs_gets_a_note(tmp_path):
    plan = _toy_pipeline(tmp_path, 'cells').plan()
    assert plan.capacity is None  # a shipped dataset keeps its configs'
    printed = '\n'.join(plan.notes)
    ann_dir = tmp_path / 'data' / 'toy_cells' / 'annotations'
    d_l = glob.glob(str(ann_dir / 'semi' / '*@10.json'))[0]
    p99 = instance_statistics(d_l).p99
    # the option asks for what D_l and val need
    needed = capacity_for(max(p99, instance_statistics(str(
        ann_dir / 'instancesonly_filtered_gtFine_val.json')).p99))
    notes = [line for line in printed.splitlines()
             if line.startswith('note: ') and 'D_l' in line]
    assert notes == [
        f'note: {d_l}: 99 % of the images of D_l have up to {p99} '
        'instances, more than the 20 per image the models of the configs '
        'find (model.panoptic_head.num_queries of configs/mmcast/'
        'supervised_student_toy.py): the rest is never learned nor '
        f'predicted; --max-instances {needed} raises the '
        'capacity (what more queries cost: docs/en/user_guides/'
        'custom_dataset.md)']
    plan = _toy_pipeline(tmp_path, 'streets').plan()
    assert plan.capacity is None
    printed = '\n'.join(plan.notes)
    assert 'instances per image, D_l: ' in printed
    assert 'note:' not in printed


def test_max_instances_sets_the_capacity_of_any_dataset(tmp_path,
                                                        monkeypatch):
    pipeline = _toy_pipeline(tmp_path, 'cells', '--max-instances', '240')
    monkeypatch.chdir(REPO_ROOT)
    plan = pipeline.plan()
    assert any(line.startswith('capacity: 240 instances per image '
                               '(--max-instances') for line in plan.notes)
    for stage in plan.stages:
        assert config_capacity(pipeline.loader.load(stage)) == 240, stage
    distill = plan.seed_stage(0, 'distill')
    assert distill.overrides.get(
        'model.teacher_cfg_options.panoptic_head.num_queries') == 240
    # the user's --cfg-options come after the capacity's
    pipeline = pipeline_of(
        'toy', '--work-dir', str(tmp_path / 'w'), '--data-root',
        str(tmp_path / 'data'), '--toy-world', 'cells', '--max-instances',
        '240', '--cfg-options', 'model.test_cfg.max_per_image=250')
    baseline = pipeline.plan().seed_stage(0, 'supervised_student')
    assert pipeline.loader.load(baseline).model.test_cfg.max_per_image == 250


# ------------------------------------------------------------ end to end
@pytest.fixture(scope='module')
def dense_run(tmp_path_factory):
    """tools/cast_pipeline.py custom-cpu on the dense toy world in the COCO
    layout, as a user would run it (1 iteration per stage)."""
    from mmcast.toy.coco_layout import make_toy_coco_dataset
    tmp = tmp_path_factory.mktemp('dense_run')
    data_root, work_dir = str(tmp / 'cells'), str(tmp / 'work')
    make_toy_coco_dataset(data_root, world='cells', num_train=8, num_val=2,
                          height=96, width=128)
    proc = subprocess.run(
        [sys.executable, PIPELINE, 'custom-cpu', '--data-root', data_root,
         '--classes', 'cell', 'dividing', '--work-dir', work_dir,
         '--percent', '25', '--iters', 'pretrain=1', '1a=1', '1b=1', '2=1',
         '3=1'], cwd=REPO_ROOT, capture_output=True, text=True,
        env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ann = osp.join(data_root, 'annotations')
    p99 = max(instance_statistics(osp.join(ann, name)).p99 for name in (
        'instances_train.1@25.json', 'instances_val.json'))
    return dict(data_root=data_root, work_dir=work_dir, log=proc.stdout,
                p99=p99, capacity=capacity_for(p99), tmp=tmp)


def test_the_console_says_the_statistics_and_the_capacity(dense_run):
    log, capacity = dense_run['log'], dense_run['capacity']
    assert 'instances per image, D_l: ' in log
    assert 'instances per image, val: ' in log
    assert (f'capacity: {capacity} instances per image, for every stage\'s'
            ' queries, kept detections, pseudo-labels and evaluator: the '
            'next multiple of 10 at or above 1.25 x '
            f'{dense_run["p99"]}') in log
    assert osp.isfile(osp.join(dense_run['work_dir'], 'results.md'))


def test_every_stage_config_the_run_dumped_has_the_capacity(
        dense_run, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # (stage 1b's and 2's teacher config)
    capacity = dense_run['capacity']
    needed = CAPACITY_MARGIN * dense_run['p99']
    for folder in STAGE_DIRS:
        dumped = glob.glob(osp.join(dense_run['work_dir'], folder, '*.py'))
        assert len(dumped) == 1, folder
        caps = _stage_caps(Config.fromfile(dumped[0]))
        assert caps and all(v == {capacity} for v in caps.values()), \
            (folder, caps)
        assert capacity >= needed
    for name in ('stage1b', 'stage2'):
        from mmcast.pseudo_labels import read_header
        header = read_header(osp.join(dense_run['work_dir'], 'seed0',
                                      'pseudo_labels', f'{name}.json'))
        assert header['filter']['max_per_image'] == capacity
        assert 'num_capped_images' in header
    for folder, key in (('seed0/finetune', 'panoptic_head.query_embed.weight'),
                        ('seed0/adapt_teacher_selftrain',
                         'student.panoptic_head.query_embed.weight')):
        ckpt = torch.load(osp.join(dense_run['work_dir'], folder,
                                   'iter_1.pth'), map_location='cpu',
                          weights_only=False)
        assert ckpt['state_dict'][key].shape[0] == capacity


def test_the_published_and_exported_student_carry_the_capacity(
        dense_run, tmp_path, capsys, monkeypatch):
    from mmcast.deploy import ONNXInferencer
    capacity = dense_run['capacity']
    stage = osp.join(dense_run['work_dir'], 'seed0', 'finetune')
    from mmcast.deploy.publish import publish
    published = publish(
        osp.join(stage, 'finetune_custom-cpu.py'),
        osp.join(stage, 'iter_1.pth'), str(tmp_path), name='cells')
    meta = torch.load(published['checkpoint'], weights_only=True)['meta']
    for found in (meta, published):
        assert (found['num_queries'], found['max_per_image'],
                found['capacity']) == (capacity, capacity, capacity)
    export_cli = load_script(osp.join(REPO_ROOT, 'tools', 'deploy',
                                      'export_onnx.py'))
    model = str(tmp_path / 'cells.onnx')
    monkeypatch.setattr(sys, 'argv', [
        'export_onnx.py', published['config'], published['checkpoint'],
        model, '--no-verify'])
    export_cli.main()
    assert (f'capacity: up to {capacity} instances per image ({capacity} '
            f'queries, test_cfg.max_per_image={capacity})') in \
        capsys.readouterr().out
    inferencer = ONNXInferencer(model, score_thr=0.)
    assert inferencer.meta['capacity'] == capacity
    image = glob.glob(osp.join(dense_run['data_root'], 'images', 'val',
                               '*.png'))[0]
    pred = inferencer(image)['predictions'][0]
    assert pred['max_per_image'] == capacity
    assert len(pred['labels']) == capacity  # every kept pair at score 0
