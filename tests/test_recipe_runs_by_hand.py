# Copyright (c) mmcast contributors. All rights reserved.
"""The papers' recipe in runs by hand (MMDetection's ``tools/train.py``
builds the runner from ``runner_type``, as ``mim train`` does):

- ``--auto-scale-lr`` scales the lr by the square-root rule and the run logs
  its global batch and lr (``BatchScaledRunner``);
- 1 image per GPU of a semi-supervised run is refused before the first
  iteration;
- a stage whose ``max_iters`` is overridden hands over to the next through
  ``work-dir://``, the shipped configs' hand-off; a run that stopped early
  is refused;
- two runs evaluated by ``CityScapesMetric`` keep their files in their own
  work dirs (``MetricOutputHook``).

The toy labels-only student trains for 2 iterations on the session's tiny
toy data (a few seconds).
"""
import argparse
import glob
import os
import os.path as osp
import shutil

import pytest
import torch
from mmengine.config import Config, DictAction

from conftest import REPO_ROOT


def _toy_config(path: str, toy_data_root: str, options: list):
    saved = os.environ.get('MMCAST_TOY_ROOT')
    os.environ['MMCAST_TOY_ROOT'] = toy_data_root + '/'
    try:
        cfg = Config.fromfile(osp.join(REPO_ROOT, path))
    finally:
        if saved is None:
            os.environ.pop('MMCAST_TOY_ROOT')
        else:
            os.environ['MMCAST_TOY_ROOT'] = saved
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg.merge_from_dict(
        parser.parse_args(['--cfg-options'] + options).cfg_options)
    return cfg


TOY_OPTIONS = [
    'train_dataloader.dataset.ann_file='
    'annotations/semi/instancesonly_filtered_gtFine_train.1@25.json',
    'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers='
    'False', 'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
    'model.train_cfg.num_points=256', 'default_hooks.logger.interval=1',
]


@pytest.fixture(scope='module')
def hand_run(tmp_path_factory, toy_data_root):
    """The toy labels-only student trained by hand as mmdet's train.py
    builds it (``runner_type``), its max_iters overridden to 2, its lr
    scaled from a recipe batch of 16 to its 4 (``--auto-scale-lr``); its
    CityScapesMetric given no folder."""
    from mmdet.utils import register_all_modules
    from mmengine.registry import RUNNERS

    import mmcast  # noqa: F401
    register_all_modules(init_default_scope=True)
    work_dir = str(tmp_path_factory.mktemp('hand_run'))
    cfg = _toy_config('configs/mmcast/supervised_student_toy.py',
                      toy_data_root, TOY_OPTIONS + [
                          'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                          'param_scheduler.end=2', f'work_dir={work_dir}'])
    cfg.auto_scale_lr = dict(enable=True, base_batch_size=16)
    assert cfg.val_evaluator[1].outfile_prefix is None
    runner = RUNNERS.build(cfg)
    runner.train()
    return dict(work_dir=work_dir, runner=runner, cfg=cfg)


def test_the_runner_scales_the_lr_by_the_square_root_and_says_so(hand_run):
    from mmcast.engine import BatchScaledRunner

    runner = hand_run['runner']
    assert isinstance(runner, BatchScaledRunner)
    base = hand_run['cfg'].optim_wrapper.optimizer.lr
    groups = runner.optim_wrapper.optimizer.param_groups
    assert max(g['initial_lr'] for g in groups) == pytest.approx(base * 0.5)
    assert runner.optim_wrapper.base_param_settings['initial_lr'] == \
        pytest.approx(base * 0.5)
    (log, ) = glob.glob(osp.join(hand_run['work_dir'], '*', '*.log'))
    with open(log) as f:
        text = f.read()
    assert (f'global batch 4 (1 GPU(s) x 4), lr {base * 0.5:.4g}, 2 '
            'iterations (the recipe\'s lr at batch 16, scaled by the '
            'square-root rule)') in text


def test_work_dir_hands_over_the_finished_checkpoint(hand_run, tmp_path):
    """``work-dir://`` (the shipped configs' hand-off) finds the run's
    checkpoint whatever its iterations: the Guided Distillation config
    loads the overridden 2-iteration baseline as its teacher. A run that
    stopped before its last iteration is refused; the completion record
    comes first."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mmcast.utils.work_dir_checkpoint import finished_checkpoint
    register_all_modules(init_default_scope=True)
    work_dir = hand_run['work_dir']
    final = osp.join(work_dir, 'iter_2.pth')
    assert finished_checkpoint(work_dir) == final
    cfg = _toy_config(
        'configs/mmcast/guided_distillation/guided-distillation_r18_toy.py',
        REPO_ROOT, [f'model.teacher_checkpoint=work-dir://{work_dir}'])
    model = MODELS.build(cfg.model)
    state = torch.load(final, map_location='cpu',
                       weights_only=True)['state_dict']
    teacher = model.teacher.state_dict()
    assert teacher and all(torch.equal(v, state[k])
                           for k, v in teacher.items() if k in state)
    assert sum(k in state for k in teacher) > 0.9 * len(teacher)
    # a copy stopped at iteration 1 of 2
    stopped = str(tmp_path / 'stopped')
    shutil.copytree(work_dir, stopped)
    os.replace(osp.join(stopped, 'iter_2.pth'),
               osp.join(stopped, 'iter_1.pth'))
    with open(osp.join(stopped, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(stopped, 'iter_1.pth'))
    with pytest.raises(FileNotFoundError,
                       match='stopped at iteration 1 of 2'):
        finished_checkpoint(stopped)
    from mmcast.utils.stage_state import write_completion
    write_completion(stopped, 'iter_1.pth', 1)
    assert finished_checkpoint(stopped) == osp.join(stopped, 'iter_1.pth')
    with pytest.raises(FileNotFoundError, match='no such work dir'):
        finished_checkpoint(str(tmp_path / 'never_trained'))


def test_one_image_per_gpu_of_a_semi_supervised_run_is_refused_by_hand(
        toy_data_root, tmp_path):
    """MMDetection's MultiSourceSampler would give the one slot to the
    labeled images: BatchScaledRunner refuses before the first iteration."""
    from mmdet.utils import register_all_modules
    from mmengine.registry import RUNNERS

    import mmcast  # noqa: F401
    register_all_modules(init_default_scope=True)
    cfg = _toy_config(
        'configs/mmcast/guided_distillation/guided-distillation_r18_toy.py',
        toy_data_root, [
            'model.teacher_checkpoint=None', 'train_dataloader.batch_size=1',
            'train_dataloader.sampler.batch_size=1', 'train_dataloader.'
            'dataset.datasets.0.ann_file=annotations/semi/'
            'instancesonly_filtered_gtFine_train.1@25.json',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            f'work_dir={tmp_path}'])
    runner = RUNNERS.build(cfg)
    with pytest.raises(ValueError, match=r'gives the sources \[1, 0\] '
                       'images: a source without an image is never'):
        runner.train()
    assert not glob.glob(osp.join(str(tmp_path), 'iter_*.pth'))


# ------------------------------------------------- CityScapesMetric files
def test_two_runs_keep_their_cityscapes_files_apart(hand_run, tmp_path,
                                                     toy_data_root):
    """The training run validated into its own work dir; a test run of its
    checkpoint (another work dir) writes its own folder and leaves the
    first one's files as they were."""
    from mmengine.registry import RUNNERS

    first = osp.join(hand_run['work_dir'], 'cityscapes_metric', 'results')
    kept = {p: os.stat(p).st_mtime_ns
            for p in glob.glob(osp.join(first, '*_pred.txt'))}
    assert len(kept) == 4  # the 4 toy val images
    test_dir = str(tmp_path / 'test_run')
    cfg = _toy_config('configs/mmcast/supervised_student_toy.py',
                      toy_data_root, TOY_OPTIONS + [
                          f'work_dir={test_dir}',
                          f'load_from={hand_run["work_dir"]}/iter_2.pth'])
    RUNNERS.build(cfg).test()
    second = osp.join(test_dir, 'cityscapes_metric', 'results')
    assert len(glob.glob(osp.join(second, '*_pred.txt'))) == 4
    assert osp.isfile(osp.join(second, 'gtInstances.json'))
    assert {p: os.stat(p).st_mtime_ns for p in kept} == kept
