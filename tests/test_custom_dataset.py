# Copyright (c) mmcast contributors. All rights reserved.
"""Your own COCO-format dataset through CAST (configs/mmcast/custom/).

A plain COCO dataset is generated (``images/{train,val}/*.jpg``,
``annotations/instances_{train,val}.json``; 8 train / 4 val 64×128 images of
classes that are not Cityscapes', ``apple`` / ``kite`` / ``mug`` with the
non-contiguous category ids 3 / 7 / 11, masks as RLE and as polygons).
With two classes (``apple`` / ``mug``, ids 3 / 11), ``tools/cast_pipeline.py
custom-cpu --data-root ... --classes ... --percent 25 --split-seed 3`` runs
it as a new user would, with no environment variable and no θ_T^0: it
writes the split, trains the stand-in θ_T^0 on D_l, then stages 1a, 1b, 2,
3 and the baseline for 1 iteration each (about 6 minutes on one CPU core),
to a results table; the same command into a second work dir gives the same
pseudo-labels and table, byte for byte. Every model family with one, two and 80 classes trains
and predicts in ``tests/test_class_counts.py``. Without training: every
custom config follows the class names (count, class weights, dataset
metainfo) and the data root; the pipeline writes a missing split as
tools/split_semi.py does, refuses class names that are no category of the
annotations or not in their order, and takes ``--iters`` by stage name,
refusing a stage the run does not have.
"""
import glob
import json
import math
import os
import os.path as osp
import re
import subprocess
import sys
from typing import Dict, Sequence

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from conftest import REPO_ROOT, pipeline_of
from mmcast.apis import pipeline as pipeline_api
from mmcast.apis.pipeline.data_preparation import (check_custom_dataset,
                                                   prepare_custom_split)

pytestmark = pytest.mark.slow_fixture(11)

PIPELINE = osp.join(REPO_ROOT, 'tools', 'cast_pipeline.py')
SPLIT = osp.join(REPO_ROOT, 'tools', 'split_semi.py')
CUSTOM_DIR = osp.join(REPO_ROOT, 'configs', 'mmcast', 'custom')
CLASSES = ('apple', 'kite', 'mug')
CATEGORY_IDS = (3, 7, 11)
STAGE_ITERS = dict(adapt_teacher=1, adapt_teacher_selftrain=1, distill=1,
                   finetune=1, supervised_student=2)
ROWS = ('supervised_student', 'teacher_pretrained', 'adapt_teacher',
        'adapt_teacher_selftrain', 'distill', 'finetune')
# the template's split: 10 %, seed 1
SPLIT_FILES = ('instances_train.1@10.json',
               'instances_train.1@10-unlabeled.json')
# the whole pipeline's run: two classes with non-contiguous category ids
# (names, ids)
RUN_CLASSES = {2: (('apple', 'mug'), (3, 11))}
# their split: --percent 25 --split-seed 3
RUN_SPLIT_FILES = ('instances_train.3@25.json',
                   'instances_train.3@25-unlabeled.json')


# ------------------------------------------------------------------ the data
def _shape_mask(cls: int, height: int, width: int,
                rng: np.random.Generator) -> np.ndarray:
    """One object: an apple (disc), a kite (rhombus) or a mug (rectangle)."""
    mask = np.zeros((height, width), np.uint8)
    size = int(rng.integers(8, 16))
    cx = int(rng.integers(size, width - size))
    cy = int(rng.integers(size, height - size))
    if cls == 0:
        cv2.circle(mask, (cx, cy), size, 1, -1)
    elif cls == 1:
        pts = np.array([[cx, cy - size], [cx + size // 2, cy],
                        [cx, cy + size], [cx - size // 2, cy]], np.int32)
        cv2.fillPoly(mask, [pts], 1)
    else:
        cv2.rectangle(mask, (cx - size // 2, cy - size),
                      (cx + size // 2, cy + size), 1, -1)
    return mask


def _segmentation(mask: np.ndarray, polygon: bool):
    """A mask as COCO polygons or as compressed RLE."""
    from pycocotools import mask as mask_utils

    if polygon:
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        return [c.reshape(-1).astype(float).tolist() for c in contours
                if len(c) >= 3]
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle['counts'] = rle['counts'].decode()
    return rle


def make_coco_dataset(root: str, num_train: int = 8, num_val: int = 4,
                      height: int = 64, width: int = 128, seed: int = 0,
                      classes: Sequence[str] = CLASSES,
                      category_ids: Sequence[int] = CATEGORY_IDS
                      ) -> Dict[str, str]:
    """Plain COCO instance data: ``images/<split>/<n>.jpg`` and
    ``annotations/instances_<split>.json``; 1-3 objects per image on a
    noisy background, later objects occluding earlier ones; ``classes``
    are some of apple / kite / mug (their shapes), ``category_ids`` their
    ids."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    colors = np.array([[200, 40, 40], [40, 160, 220], [230, 200, 60]])
    paths = {}
    image_id, ann_id = 100, 1
    for split, num in (('train', num_train), ('val', num_val)):
        os.makedirs(osp.join(root, 'images', split), exist_ok=True)
        images, annotations = [], []
        for _ in range(num):
            image = rng.integers(60, 120, (height, width, 3)).astype(np.uint8)
            owner = np.full((height, width), -1)
            objects = []
            for k in range(int(rng.integers(1, 4))):
                cls = CLASSES.index(classes[int(rng.integers(
                    0, len(classes)))])
                mask = _shape_mask(cls, height, width, rng)
                owner[mask > 0] = k
                image[mask > 0] = colors[cls]
                objects.append(cls)
            name = f'{split}/{image_id:06d}.jpg'
            cv2.imwrite(osp.join(root, 'images', name), image)
            images.append(dict(id=image_id, file_name=name, height=height,
                               width=width))
            for k, cls in enumerate(objects):
                visible = (owner == k).astype(np.uint8)
                if visible.sum() < 20:
                    continue
                rle = mask_utils.encode(np.asfortranarray(visible))
                annotations.append(dict(
                    id=ann_id, image_id=image_id,
                    category_id=category_ids[classes.index(CLASSES[cls])],
                    iscrowd=0,
                    area=float(mask_utils.area(rle)),
                    bbox=mask_utils.toBbox(rle).tolist(),
                    segmentation=_segmentation(visible, polygon=cls > 0)))
                ann_id += 1
            image_id += 1
        # every image has an annotation: the labeled split is never empty
        assert {a['image_id'] for a in annotations} == \
            {im['id'] for im in images}
        coco = dict(
            images=images, annotations=annotations,
            categories=[dict(id=i, name=n, supercategory='thing')
                        for i, n in zip(category_ids, classes)])
        paths[split] = osp.join(root, 'annotations', f'instances_{split}.json')
        os.makedirs(osp.dirname(paths[split]), exist_ok=True)
        with open(paths[split], 'w', encoding='utf-8') as f:
            json.dump(coco, f)
    return paths


def _env(**extra) -> dict:
    """This environment without the custom dataset's variables, plus
    ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('MMCAST_CUSTOM_ROOT', 'MMCAST_CUSTOM_CLASSES')}
    env.update(PYTHONWARNINGS='ignore', **extra)
    return env


def _run(cmd: Sequence[str], env: dict) -> str:
    proc = subprocess.run(list(cmd), cwd=REPO_ROOT, capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


# --------------------------------------------------------- the whole pipeline
@pytest.fixture(scope='module', params=sorted(RUN_CLASSES),
                ids=lambda n: f'{n}-class')
def run(request, tmp_path_factory):
    """Data → tools/cast_pipeline.py custom-cpu, as the README's two lines:
    no split, no θ_T^0, no environment variable (1 iteration per stage);
    the pseudo-label filters keep the barely trained teachers' instances
    from score 0.05. The same command again into a second work dir."""
    classes, category_ids = RUN_CLASSES[request.param]
    tmp = tmp_path_factory.mktemp(f'custom_dataset_{request.param}')
    data_root, work_dir = str(tmp / 'fruit'), str(tmp / 'work')
    anns = make_coco_dataset(data_root, classes=classes,
                             category_ids=category_ids)
    logs = [_run([
        sys.executable, PIPELINE, 'custom-cpu', '--data-root', data_root,
        '--classes', *classes, '--work-dir', wd, '--percent', '25',
        '--split-seed', '3', '--iters', 'pretrain=1', '1a=1', '1b=1', '2=1',
        '3=1', '--stage-cfg-options',
        'adapt_teacher_selftrain:custom_hooks.0.filter_cfg.score_thr=0.05',
        'distill:custom_hooks.0.filter_cfg.score_thr=0.05'
    ], _env()) for wd in (work_dir, work_dir + '2')]
    return dict(data_root=data_root, work_dir=work_dir, anns=anns,
                log=logs[0], second_log=logs[1], classes=classes,
                category_ids=category_ids, tmp=str(tmp))


def test_the_pipeline_splits_the_plain_coco_layout(run):
    """The split --percent / --split-seed ask for, written by the pipeline
    exactly as tools/split_semi.py writes it."""
    ann_dir = osp.join(run['data_root'], 'annotations')
    assert 'the labeled / unlabeled split is missing: writing it (the same ' \
        'seed and share): python tools/split_semi.py' in run['log']
    by_tool = osp.join(run['tmp'], 'by_tool')
    _run([sys.executable, SPLIT, run['anns']['train'], '--percent', '25',
          '--seed', '3', '--out-dir', by_tool], _env())
    for name in RUN_SPLIT_FILES:
        with open(osp.join(ann_dir, name), 'rb') as ours, \
                open(osp.join(by_tool, name), 'rb') as tool:
            assert ours.read() == tool.read(), name
    with open(run['anns']['train']) as f:
        train = json.load(f)
    labeled, unlabeled = (json.load(open(osp.join(ann_dir, name)))
                          for name in RUN_SPLIT_FILES)
    lab = {im['id'] for im in labeled['images']}
    unl = {im['id'] for im in unlabeled['images']}
    assert len(lab) == 2 and len(unl) == 6  # 25 % of 8
    assert lab | unl == {im['id'] for im in train['images']}
    assert {a['image_id'] for a in labeled['annotations']} == lab
    for part in (labeled, unlabeled):
        assert part['categories'] == train['categories']


def test_the_pipeline_trains_a_standin_teacher_without_one(run):
    """No --pretrained-teacher: θ_T^0 is the stage-1a config trained from
    scratch on D_l, said on the console, and stage 1a starts from it."""
    standin = osp.join(run['work_dir'], 'teacher_standin', 'iter_1.pth')
    assert 'θ_T^0: no --pretrained-teacher, so a stand-in is trained from ' \
        'scratch on the labeled split D_l' in run['log']
    assert f'-> {standin}' in run['log']
    assert osp.isfile(standin)
    adapt = Config.fromfile(osp.join(run['work_dir'], 'seed0',
                                     'adapt_teacher',
                                     'adapt_teacher_custom-cpu.py'))
    assert adapt.load_from == standin
    standin_cfg = Config.fromfile(osp.join(
        run['work_dir'], 'teacher_standin', 'adapt_teacher_custom-cpu.py'))
    assert standin_cfg.load_from is None
    assert standin_cfg.train_dataloader.dataset.ann_file.endswith(
        RUN_SPLIT_FILES[0])


def test_stages_use_the_custom_configs(run):
    for stage in STAGE_ITERS:
        assert f'configs/mmcast/custom/{stage}_custom-cpu.py' in run['log']
    assert 'configs/mmcast/adapt_teacher_toy.py' not in run['log']


def test_every_stage_leaves_a_checkpoint_of_the_custom_classes(run):
    import torch

    import mmcast  # noqa: F401  (allow-lists MMEngine's checkpoint globals)
    for stage, iters in STAGE_ITERS.items():
        path = osp.join(run['work_dir'], 'seed0', stage, f'iter_{iters}.pth')
        assert osp.isfile(path), stage
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
        assert tuple(ckpt['meta']['dataset_meta']['classes']) == \
            run['classes'], stage
        # C + 1 rows in every classifier (CASTDistiller: student.*)
        rows = {k: v.shape[0] for k, v in ckpt['state_dict'].items()
                if k.endswith('panoptic_head.cls_embed.weight')}
        assert rows and set(rows.values()) == {len(run['classes']) + 1}, \
            stage


def test_pseudo_labels_name_the_custom_categories(run):
    from pycocotools.coco import COCO

    unlabeled = osp.join(run['data_root'], 'annotations',
                         RUN_SPLIT_FILES[1])
    with open(unlabeled) as f:
        image_ids = {im['id'] for im in json.load(f)['images']}
    for name in ('stage1b', 'stage2'):
        coco = COCO(osp.join(run['work_dir'], 'seed0', 'pseudo_labels',
                             f'{name}.json'))
        assert set(coco.getImgIds()) == image_ids
        cats = coco.loadCats(coco.getCatIds())
        assert [(c['id'], c['name']) for c in cats] == \
            list(zip(run['category_ids'], run['classes']))
        for ann in coco.dataset['annotations']:
            assert ann['category_id'] in run['category_ids']


COST_KEYS = ('cpu_s', 'wall_s')


def _without_cost(name: str, data: bytes):
    """A results file without what each run's stages cost (their processor
    and wall seconds differ from run to run; every row has them)."""
    if name.endswith('.md'):
        lines = data.decode().splitlines()
        assert any(line.startswith('cost (') for line in lines), name
        return [line for line in lines if not line.startswith('cost (')]
    if not name.endswith('results.json'):
        return data
    content = json.loads(data)
    content.pop('cost', None)
    content.pop('pretraining_cpu_s', None)
    rows = content.get('rows', content)
    for row in rows.values():
        for cell in (row.get('per_seed') or {'': row}).values():
            assert cell['cpu_s'] > 0, (name, cell)
            for key in COST_KEYS:
                cell.pop(key)
    return content


def test_the_same_command_gives_the_same_result(run):
    """Two runs of one command on the same data (each stage seeded by the
    pipeline, θ_T^0's stand-in included): the same pseudo-labels, byte for
    byte (their header holds the teacher's state dict hash), and the same
    results."""
    files = ['seed0/pseudo_labels/stage1b.json',
             'seed0/pseudo_labels/stage2.json', 'seed0/results.json',
             'results.json', 'results.md']
    counts = []
    for name in files:
        with open(osp.join(run['work_dir'], name), 'rb') as a, \
                open(osp.join(run['work_dir'] + '2', name), 'rb') as b:
            assert _without_cost(name, a.read()) == \
                _without_cost(name, b.read()), name
        if name.endswith('stage2.json'):
            with open(osp.join(run['work_dir'], name)) as f:
                counts.append(len(json.load(f)['annotations']))
    assert counts[0] > 0  # labels to compare, not an empty file


def test_the_console_tells_the_split_the_plan_and_the_eta(run):
    """The split's images, each stage's place in the run, the run's ETA,
    each progress line once, and the pseudo-label counts as soon as they
    are written (before their stage's result)."""
    log = run['log']
    assert 'split: 2 labeled / 6 unlabeled / 4 val images\n' in log
    assert f'  D_u: {run["data_root"]}/annotations/{RUN_SPLIT_FILES[1]}' in log
    places = re.findall(r'\((?:stage )?(\d) of 7\)', log)
    assert sorted(set(places)) == [str(k) for k in range(1, 8)]
    assert re.search(r'^run: \d of 7 stages done, ETA \d+:\d\d:\d\d$', log,
                     re.M)
    progress = [re.sub(r' \(running [^)]*\)$', '', line)
                for line in log.splitlines() if ' iter ' in line]
    assert progress and len(progress) == len(set(progress))
    for stage, key in (('stage 1b', 'adapt_teacher_selftrain'),
                       ('stage 2', 'distill')):
        told = log.index(f'[seed 0] [{stage}] pseudo-labels: ')
        assert told < log.index(f'[seed 0] [{key}] mask AP')


def test_results_have_every_row_with_finite_numbers(run):
    with open(osp.join(run['work_dir'], 'results.json')) as f:
        results = json.load(f)
    assert results['dataset'] == 'custom-cpu'
    assert set(results['rows']) == set(ROWS)
    for key in ROWS:
        cell = results['rows'][key]['per_seed']['0']
        for metric in ('segm_AP', 'segm_AP50'):
            assert math.isfinite(cell[metric]) and 0 <= cell[metric] <= 100
    assert math.isfinite(results['stage3_minus_baseline'])


# ------------------------------------------------ configs, without training
def _walk(node, path=''):
    """``(path, dict)`` of every dict in a config."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, f'{path}.{i}')


def _check_follows(cfg, classes, data_root, name):
    """Every head, class weight and dataset of ``cfg`` has ``classes``."""
    heads = datasets = 0
    for path, node in _walk(cfg.to_dict()):
        if 'num_things_classes' in node and '.model' in f'.{path}':
            assert node['num_things_classes'] == len(classes), (name, path)
            heads += 1
        if 'class_weight' in node:
            assert node['class_weight'] == [1.0] * len(classes) + [0.1], \
                (name, path)
        if 'ann_file' in node and 'type' in node and \
                not node['type'].endswith('Metric'):
            assert tuple(node['metainfo']['classes']) == classes, (name, path)
            root = node['data_root'] or node.get('unlabeled_ann_file', '')
            assert root.startswith(data_root), (name, path)
            datasets += 1
        if str(node.get('type')).endswith('Metric'):
            assert node['ann_file'].startswith(data_root), (name, path)
    assert heads >= 2 and datasets >= 2, name  # (fusion) head; train, val


@pytest.mark.parametrize('classes', [('balloon', ), CLASSES + ('pear', 'fig')])
def test_every_custom_config_follows_the_class_names(classes, monkeypatch):
    """The template's classes, or five through --classes's environment
    variable: every model, loss weight and dataset of every stage config (and
    of the frozen teachers' configs) has them; the data root likewise."""
    if classes == ('balloon', ):  # the template's own settings
        monkeypatch.delenv('MMCAST_CUSTOM_CLASSES', raising=False)
        monkeypatch.delenv('MMCAST_CUSTOM_ROOT', raising=False)
        data_root = 'data/custom/'
    else:
        data_root = '/elsewhere/fruit/'
        monkeypatch.setenv('MMCAST_CUSTOM_CLASSES', repr(classes))
        monkeypatch.setenv('MMCAST_CUSTOM_ROOT', repr(data_root))
    configs = sorted(glob.glob(osp.join(CUSTOM_DIR, '*_custom*.py')))
    assert len(configs) == 12  # 5 stages + GD, two sizes
    for path in configs:
        cfg = Config.fromfile(path)
        name = osp.basename(path)
        assert cfg.data_root == data_root and cfg.classes == classes
        _check_follows(cfg, classes, data_root, name)
        teacher = cfg.model.get('teacher')
        if isinstance(teacher, str):  # a frozen teacher built from its config
            assert teacher.startswith('configs/mmcast/custom/adapt_teacher_')
            assert teacher.endswith(name[name.index('_custom'):])
            _check_follows(Config.fromfile(osp.join(REPO_ROOT, teacher)),
                           classes, data_root, teacher)


@pytest.fixture
def pipeline(tmp_path):
    """The pipeline's API (``mmcast.apis.pipeline``), and a fresh dataset
    (no split)."""
    data_root = str(tmp_path / 'fruit')
    make_coco_dataset(data_root, num_train=6, num_val=2)
    teacher0 = str(tmp_path / 'teacher0.pth')
    open(teacher0, 'wb').close()
    return pipeline_api, data_root, teacher0, str(tmp_path / 'work')


def test_pipeline_writes_a_missing_split_like_split_semi(pipeline, tmp_path,
                                                         capsys):
    from mmcast.datasets.semi_split import write_split

    script, data_root, teacher0, work_dir = pipeline
    args = ['custom-cpu', '--data-root', data_root, '--classes', *CLASSES,
            '--work-dir', work_dir, '--pretrained-teacher', teacher0]
    ann_dir = osp.join(data_root, 'annotations')
    loader = pipeline_of(*args).loader
    prepare_custom_split(loader, dry=True)
    assert 'python tools/split_semi.py' in capsys.readouterr().out
    assert not osp.exists(osp.join(ann_dir, SPLIT_FILES[0]))
    prepare_custom_split(loader, dry=False)
    by_tool = str(tmp_path / 'by_tool')  # what tools/split_semi.py calls
    write_split(osp.join(ann_dir, 'instances_train.json'), by_tool, seed=1,
                percent=10)
    for name in SPLIT_FILES:
        with open(osp.join(ann_dir, name), 'rb') as ours, \
                open(osp.join(by_tool, name), 'rb') as tool:
            assert ours.read() == tool.read(), name


def test_pipeline_refuses_classes_it_would_mislabel(pipeline, capsys):
    script, data_root, teacher0, work_dir = pipeline
    assert script.main(['custom-cpu', '--data-root', data_root, '--classes',
                        'apple', 'pear', '--work-dir', work_dir,
                        '--pretrained-teacher', teacher0, '--dry-run']) \
        == script.PREFLIGHT_FAILED
    err = capsys.readouterr().err
    assert "no category named ['pear']" in err
    assert 'instances_train.json' in err and 'instances_val.json' in err
    # names that CocoDataset would mislabel
    assert script.main(['custom-cpu', '--data-root', data_root, '--classes',
                        'mug', 'apple', '--work-dir', work_dir,
                        '--pretrained-teacher', teacher0, '--dry-run']) \
        == script.PREFLIGHT_FAILED
    assert "are not in the order of its categories, ['apple', 'mug']" in \
        capsys.readouterr().err
    with pytest.raises(script.PipelineError,
                       match='--classes is for your own dataset'):
        pipeline_of('toy', '--classes', 'apple', '--work-dir', work_dir)


def test_iters_by_stage_name_and_refused_where_they_do_not_apply(pipeline):
    """``--iters STAGE=N`` sets those stages (aliases too), the others keep
    their config's; the former five values still work with 0 for a stage
    the run does not have; a value for such a stage is an error."""
    script, data_root, teacher0, work_dir = pipeline
    base = ['custom-cpu', '--data-root', data_root, '--classes', *CLASSES,
            '--work-dir', work_dir]

    def plan(*args):
        stages = pipeline_of(*base, *args).plan().stages
        return {st.key: st.max_iters for st in stages if st.seed in (None, 0)}

    iters = plan('--pretrained-teacher', teacher0, '--iters', 'distill=7',
                 '3=5')
    assert (iters['distill'], iters['finetune']) == (7, 5)
    assert iters['supervised_student'] == 12  # 2 + 3
    assert iters['adapt_teacher'] == 300  # its config's
    assert plan('--pretrained-teacher', teacher0, '--iters', '0', '4', '3',
                '2', '1')['adapt_teacher_selftrain'] == 3
    # without a θ_T^0 the stand-in is pre-trained: pretrain applies
    iters = plan('--iters', 'pretrain=9', '1a=2')
    assert (iters['teacher_standin'], iters['adapt_teacher']) == (9, 2)
    for args, message in (
            (['--pretrained-teacher', teacher0, '--iters', 'pretrain=9'],
             'this run has no pretrain stage'),
            (['--pretrained-teacher', teacher0, '--iters', '9', '1', '1',
              '1', '1'], 'this run has no pretrain stage'),
            (['--methods', 'gd', '--iters', '1a=2'],
             'this run has no adapt_teacher stage'),
            (['--iters', 'stage2=2'], "--iters 'stage2=2': expected STAGE=N"),
            (['--iters', '1', '2'], 'give STAGE=N items'),
            (['--iters', 'distill=0'], '--iters distill=0: at least 1'),
            (['--percent', '100'], '--percent 100: the labeled share'),
    ):
        with pytest.raises(script.PipelineError, match=re.escape(message)):
            plan(*args)
    with pytest.raises(script.PipelineError,
                       match='--percent is for your own data'):
        pipeline_of('toy', '--percent', '5', '--work-dir', work_dir)


def test_percent_and_split_seed_reach_every_stage(pipeline):
    """--percent / --split-seed choose the split files every stage reads."""
    script, data_root, teacher0, work_dir = pipeline
    runner = pipeline_of(
        'custom-cpu', '--data-root', data_root, '--classes', *CLASSES,
        '--work-dir', work_dir, '--pretrained-teacher', teacher0,
        '--percent', '50', '--split-seed', '0')
    assert check_custom_dataset(runner.spec, runner.loader) == []
    cfg = runner.loader.config_file(
        runner.loader.stage_config('supervised_student'))
    assert (cfg.percent, cfg.split_seed) == (50.0, 0)
    stage_1b = runner.plan().seed_stage(0, 'adapt_teacher_selftrain')
    unlabeled = runner.loader.load(stage_1b).train_dataloader.dataset \
        .datasets[1].unlabeled_ann_file
    assert unlabeled == osp.join(data_root, 'annotations',
                                 'instances_train.0@50-unlabeled.json')
