# Copyright (c) mmcast contributors. All rights reserved.
"""The papers' recipe as ``tools/cast_pipeline.py`` plans it with the
shipped configs.

- one labeled set D_l: the image ids each stage's config reads (as the
  pipeline runs it) are one set for CAST 1a/1b/2/3, the labels-only
  baseline and Guided Distillation, on Cityscapes (Guided Distillation's
  ``perc_10``, or ``--labeled-split``), ADE20K and COCO (a seeded draw);
- the results table reads cityscapesscripts' AP for Cityscapes rows (a
  constructed metrics log), pycocotools' in a second column;
- batch and lr follow ``--nproc``: the plans of 1, 4 and 8 GPUs print and
  apply the square-root rule; 1 image per GPU of a semi-supervised stage is
  refused (``--dry-run``);
- Guided Distillation at the paper's 90k / 50k (COCO: its 368,750);
- a stage whose ``max_iters`` is overridden hands over to the next;
- a toy stage trained by the version before these changes still runs alike.

Plans only (and one ``--dry-run``); the same recipe in runs by hand:
``tests/test_recipe_runs_by_hand.py``.
"""
import json
import math
import os
import os.path as osp
import subprocess
import sys
from typing import Tuple

import pytest

from conftest import REPO_ROOT, pipeline_of
from mmcast.apis.pipeline import (CASTPipeline, PipelineError, Plan,
                                  StageRunner)
from mmcast.apis.pipeline.batch_plan import batch_problems, print_batches

SCRIPT = osp.join(REPO_ROOT, 'tools', 'cast_pipeline.py')
TEACHER0 = 'checkpoints/teacher0.pth'  # a plan needs no file
# the train json each dataset's splits are made from (under data_root)
TRAIN_JSON = dict(
    cityscapes='data/cityscapes/annotations/'
    'instancesonly_filtered_gtFine_train.json',
    ade20k='data/ADEChallengeData2016/ade20k_instance_train.json',
    coco='data/coco/annotations/instances_train2017.json')
SPLIT_DIR = dict(cityscapes='data/cityscapes/annotations/semi',
                 ade20k='data/ADEChallengeData2016/semi_anns',
                 coco='data/coco/semi_anns')
SEMI = ('adapt_teacher_selftrain', 'distill', 'guided_distillation')


def _plan(*argv: str) -> Tuple[CASTPipeline, Plan]:
    pipeline = pipeline_of(*argv)
    return pipeline, pipeline.plan()


def _training(plan: Plan) -> dict:
    """The training stages of seed 0, by key."""
    return {st.key: st for st in plan.per_seed[0]
            if st.max_iters is not None}


# ----------------------------------------------------------- one D_l
def _write_splits(root: str, ds: str) -> None:
    """A train json of the dataset's layout under ``root`` (the published
    list's images and 60 others) and its splits: ``1@perc_10`` (Cityscapes)
    and a seeded ``1@10``."""
    from mmcast.datasets.semi_split import published_split_file, write_split

    names = [f'img{i}_leftImg8bit.png' for i in range(60)]
    if ds == 'cityscapes':
        with open(published_split_file('cityscapes/perc_10')) as f:
            names += [ln.strip().replace('gtFine_instanceIds', 'leftImg8bit')
                      for ln in f if ln.strip()]
    train = osp.join(root, TRAIN_JSON[ds])
    os.makedirs(osp.dirname(train), exist_ok=True)
    with open(train, 'w') as f:
        json.dump(dict(images=[dict(id=i + 1, file_name=n, height=4, width=4)
                               for i, n in enumerate(names)],
                       annotations=[], categories=[dict(id=1, name='x')]), f)
    out = osp.join(root, SPLIT_DIR[ds])
    write_split(train, out, seed=1, percent=10)
    if ds == 'cityscapes':
        write_split(train, out, image_list_file='cityscapes/perc_10')


def _image_ids(root: str, path: str) -> frozenset:
    with open(osp.join(root, path)) as f:
        return frozenset(img['id'] for img in json.load(f)['images'])


def _read_sets(pipeline: CASTPipeline, plan: Plan, root: str) -> dict:
    """Per training stage: the image ids of its labeled source and of the
    unlabeled sets it reads (D_u of the pseudo-labeled source and of the
    PseudoLabelHook), from its config as the pipeline runs it."""
    from mmcast.apis.pipeline.config_inputs import dataset_inputs

    sets = {}
    for key, stage in _training(plan).items():
        cfg = pipeline.loader.load(stage)
        dataset = cfg.train_dataloader.dataset
        sources = dataset.get('datasets') or [dataset]
        labeled = [ann for ann, _ in dataset_inputs(sources[0])]
        unlabeled = [ann for ann, _ in dataset_inputs(
            [s for s in sources[1:] if s.type == 'PseudoLabeledDataset'] +
            [h for h in cfg.get('custom_hooks', [])
             if h.type == 'PseudoLabelHook'])]
        assert len(labeled) == 1, (key, labeled)
        sets[key] = (_image_ids(root, labeled[0]),
                     {_image_ids(root, p) for p in unlabeled})
    return sets


@pytest.mark.parametrize('ds,split,size', [
    ('cityscapes', None, 296),  # Guided Distillation's perc_10, the default
    ('cityscapes', '1@10', 36),  # a seeded draw, by option
    ('ade20k', None, 6),  # no published list: the seeded draw
    ('coco', None, 6),
])
def test_every_stage_and_method_reads_one_labeled_set(tmp_path, ds, split,
                                                      size):
    root = str(tmp_path)
    _write_splits(root, ds)
    methods = ['cast', 'gd'] if ds != 'ade20k' else ['cast']
    argv = [ds, '--work-dir', str(tmp_path / 'run'), '--pretrained-teacher',
            TEACHER0, '--methods', *methods]
    sets = _read_sets(*_plan(*argv + (['--labeled-split', split]
                                      if split else [])), root)
    expected = {'adapt_teacher', 'adapt_teacher_selftrain', 'distill',
                'finetune', 'supervised_student'} | (
                    {'guided_distillation'} if 'gd' in methods else set())
    assert set(sets) == expected
    labeled = {d_l for d_l, _ in sets.values()}
    assert len(labeled) == 1, ds
    (d_l, ) = labeled
    assert len(d_l) == size
    every = _image_ids(root, TRAIN_JSON[ds])
    for key, (_, unlabeled) in sets.items():
        # CAST's D_u is the rest of the train images (Guided Distillation's
        # pool, every train image, is no pseudo-labeled source)
        assert unlabeled == ({every - d_l} if key in SEMI[:2] else set()), key


def test_a_split_name_that_is_no_split_is_refused(tmp_path):
    with pytest.raises(PipelineError, match='expected SEED@TAG'):
        _plan('cityscapes', '--work-dir', str(tmp_path), '--pretrained-'
              'teacher', TEACHER0, '--labeled-split', 'perc_10')
    with pytest.raises(PipelineError, match='--percent and --split-seed'):
        _plan('custom-cpu', '--work-dir', str(tmp_path), '--labeled-split',
              '1@10')


# ----------------------------------------------------------- the metric
def _metrics_log(work_dir: str, record: dict) -> None:
    """A training run's json log with one validation record, as MMEngine
    writes it."""
    run = osp.join(work_dir, '20260101_000000', 'vis_data')
    os.makedirs(run)
    with open(osp.join(run, '20260101_000000.json'), 'w') as f:
        f.write(json.dumps(dict(lr=1e-4, loss=1.0, step=10)) + '\n')
        f.write(json.dumps(dict(record, step=10)) + '\n')


def test_cityscapes_rows_read_cityscapesscripts_ap(tmp_path):
    """Cityscapes: cityscapesscripts' AP / AP50 first, pycocotools' in the
    second column; a row recorded with COCO's AP by an earlier version is
    read again. The toy data (same layout, both evaluators) reads COCO's;
    a training stage's row is read from its logs either way."""
    record = {'coco/segm_mAP': 0.252, 'coco/segm_mAP_50': 0.471,
              'cityscapes/mAP': 0.339, 'cityscapes/AP@50': 0.587}
    pipelines = {ds: pipeline_of(
        ds, '--work-dir', str(tmp_path / ds), '--seeds', '0', '1',
        '--pretrained-teacher', TEACHER0) for ds in ('cityscapes', 'toy')}
    for ds, pipeline in pipelines.items():
        per_seed = {}
        plan = pipeline.plan()
        runner = StageRunner(pipeline.spec, pipeline.loader)
        for seed in (0, 1):
            stage_dir = tmp_path / ds / f'seed{seed}' / 'finetune'
            _metrics_log(str(stage_dir), record)
            stage = plan.seed_stage(seed, 'finetune')
            stale = {'finetune': dict(segm_AP=25.2, segm_AP50=47.1)}
            runner._record(seed, stage, stale)
            per_seed[seed] = stale
        row = per_seed[0]['finetune']
        if ds == 'cityscapes':
            assert row == dict(segm_AP=33.9, segm_AP50=58.7, coco_segm_AP=25.2,
                               coco_segm_AP50=47.1, metric='cityscapes')
            with open(tmp_path / ds / 'seed0' / 'results.json') as f:
                assert json.load(f)['finetune'] == row
        else:  # the toy's row is COCO's, read again from the logs
            assert row == dict(segm_AP=25.2, segm_AP50=47.1, metric='coco')
        result = pipeline.write_table(per_seed)
        assert result['rows']['finetune']['mean_segm_AP'] == row['segm_AP']
        with open(tmp_path / ds / 'results.md') as f:
            table = f.read()
        if ds == 'cityscapes':
            assert '(cityscapesscripts, ×100); last column COCO-style' \
                in table
            assert '| 33.9 / 58.7 | 33.9 / 58.7 | 33.90 ± 0.00 |  | ' \
                '25.2 / 47.1 |' in table
        else:
            assert '(COCO-style, ×100)\n' in table
            assert '| 25.2 / 47.1 | 25.2 / 47.1 | 25.20 ± 0.00 |  |\n' \
                in table


def test_a_log_without_the_datasets_metric_is_named(tmp_path):
    from mmcast.apis.pipeline import read_metrics

    _metrics_log(str(tmp_path), {'coco/segm_mAP': 0.3,
                                 'coco/segm_mAP_50': 0.5})
    with pytest.raises(RuntimeError, match='cityscapes/mAP, '
                       'cityscapes/AP@50 .*is that evaluator in its config'):
        read_metrics(str(tmp_path), 'cityscapes')


# ------------------------------------------------------- batch and lr
@pytest.mark.parametrize('gpus', [1, 4, 8])
def test_batch_and_lr_follow_the_gpus(tmp_path, capsys, gpus):
    """Global batch GPUs x 2; every lr from its recipe's batch by the
    square-root rule (CAST: 5e-5 at 8; Guided Distillation: 1e-4 at 32,
    written 5e-5 at 8); iterations as the recipe's; applied as options and
    printed."""
    pipeline, plan = _plan('cityscapes', '--work-dir', str(tmp_path),
                           '--pretrained-teacher', TEACHER0, '--methods',
                           'cast', 'gd', '--nproc', str(gpus))
    stages = _training(plan)
    lr = 5e-5 * math.sqrt(2 * gpus / 8)
    iters = dict(adapt_teacher=10000, adapt_teacher_selftrain=30000,
                 distill=90000, finetune=10000, supervised_student=100000,
                 guided_distillation=90000)
    for key, stage in stages.items():
        cfg = pipeline.loader.load(stage)
        assert cfg.optim_wrapper.optimizer.lr == pytest.approx(lr), key
        assert cfg.train_dataloader.batch_size == 2
        assert cfg.auto_scale_lr.enable is False  # applied once, here
        assert cfg.train_cfg.max_iters == stage.max_iters == iters[key]
        assert stage.batch.batch == 2 * gpus
    assert gpus == 4 or \
        'optim_wrapper.optimizer.lr' in stages['distill'].overrides
    print_batches(plan.first + plan.per_seed[0], {})
    out = capsys.readouterr().out
    assert f'batch and lr ({gpus} GPU(s); ' in out
    line = next(ln for ln in out.splitlines() if '[stage 2]' in ln)
    assert f'global batch {2 * gpus} ({gpus} GPU(s) x 2: {gpus} labeled + ' \
        f'{gpus} unlabeled), lr {lr:.3g} (' in line
    assert '90000 iterations = ' in line
    # the published list's 296 images count before the split is written
    assert f'{90000 * gpus / 296:.1f} epochs of the labeled images (296)' \
        in line
    assert batch_problems(list(stages.values())) == []


def test_one_image_per_gpu_of_a_semi_supervised_stage_is_refused(tmp_path):
    """--batch-per-gpu 1 on 8 GPUs: the labels-only stages train at 8, the
    semi-supervised ones (1 labeled + 0 unlabeled images per GPU) are
    preflight problems, and the dry run exits 2 before any stage."""
    proc = subprocess.run(
        [sys.executable, SCRIPT, 'cityscapes', '--work-dir',
         str(tmp_path / 'run'), '--pretrained-teacher', TEACHER0,
         '--methods', 'cast', 'gd', '--nproc', '8', '--batch-per-gpu', '1',
         '--dry-run'], cwd=REPO_ROOT, capture_output=True, text=True,
        env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert '[seed 0] [stage 3] global batch 8 (8 GPU(s) x 1), lr 5e-05 ' \
        '(the recipe\'s, at its batch)' in proc.stdout
    refused = [ln for ln in proc.stderr.splitlines()
               if 'gives the sources [1, 0] images' in ln]
    assert len(refused) == 3, proc.stderr
    for name in ('[stage 1b]', '[stage 2]', '[Guided Distillation]'):
        assert any(name in ln for ln in refused), name


# ------------------------------------------- Guided Distillation's length
@pytest.mark.parametrize('ds,iters,burn_in', [
    ('cityscapes', 90000, 50000), ('coco', 368750, 50000)])
def test_guided_distillation_plan_is_the_papers(tmp_path, ds, iters, burn_in):
    pipeline, plan = _plan(ds, '--work-dir', str(tmp_path), '--methods',
                           'gd')
    gd = _training(plan)['guided_distillation']
    assert gd.max_iters == iters
    cfg = pipeline.loader.load(gd)
    (hook, ) = [h for h in cfg.custom_hooks if h.type == 'GuidedTeacherHook']
    assert hook.burn_in_iters == burn_in
    assert cfg.param_scheduler.end == iters
    # its teacher: the labels-only baseline's final checkpoint
    baseline = _training(plan)['supervised_student']
    assert cfg.model.teacher_checkpoint == baseline.final


# ------------------------------------------------------------ hand-offs
def test_an_overridden_max_iters_hands_over_in_the_plan(tmp_path):
    pipeline, plan = _plan('cityscapes', '--work-dir', str(tmp_path),
                           '--pretrained-teacher', TEACHER0, '--methods',
                           'cast', 'gd', '--stage-cfg-options',
                           'distill:train_cfg.max_iters=7',
                           'adapt_teacher:train_cfg.max_iters=5',
                           'guided_distillation:train_cfg.max_iters=900')
    stages = _training(plan)
    load = pipeline.loader.load
    gd = load(stages['guided_distillation'])
    assert stages['guided_distillation'].max_iters == 900
    assert [h.burn_in_iters for h in gd.custom_hooks
            if h.type == 'GuidedTeacherHook'] == [500]  # 50k of 90k
    assert stages['distill'].max_iters == 7
    assert stages['distill'].final.endswith('distill/iter_7.pth')
    finetune = load(stages['finetune'])
    assert finetune.model.init_cfg.checkpoint == stages['distill'].final
    assert load(stages['distill']).param_scheduler.end == 7
    selftrain = load(stages['adapt_teacher_selftrain'])
    assert selftrain.model.teacher_checkpoint.endswith(
        'adapt_teacher/iter_5.pth')


def test_stages_trained_before_still_run_alike(tmp_path):
    """A toy stage dumped by the version before (a literal ``iter_N.pth``
    hand-off variable, MMEngine's runner, no metric-folder hook) is the
    same stage: its finished work dir is kept (and ``--reuse-from`` links
    it); a changed lr is not."""
    pipeline, plan = _plan('toy', '--work-dir', str(tmp_path))
    stage = _training(plan)['finetune']
    before = pipeline.loader.load(stage)
    before.work_dir = stage.work_dir
    before.distilled_student = ('work_dirs/cast-distill_mask2former-r18_'
                                '1xb4-1600it_toy-semi-10p/iter_1600.pth')
    before.pop('runner_type')
    before.default_hooks.pop('metric_output')
    os.makedirs(stage.work_dir)
    dumped = osp.join(stage.work_dir, osp.basename(stage.config))
    before.dump(dumped)
    assert pipeline.loader.same_config(stage, stage.work_dir)
    before.optim_wrapper.optimizer.lr *= 2
    before.dump(dumped)
    assert not pipeline.loader.same_config(stage, stage.work_dir)
