# Copyright (c) mmcast contributors. All rights reserved.
"""An offline CAST stage holds no teacher once its pseudo-labels exist."""
import gc
import math
import os
import os.path as osp
import weakref

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.runner import Runner

import mmcast  # noqa: F401
from conftest import REPO_ROOT
from mmcast.pseudo_labels import read_header

register_all_modules()
CLASSES = ('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
           'bicycle')
LABELED = 'annotations/semi/instancesonly_filtered_gtFine_train.1@25.json'
UNLABELED = ('annotations/semi/'
             'instancesonly_filtered_gtFine_train.1@25-unlabeled.json')
TEACHER_CONFIG = osp.join(REPO_ROOT, 'configs/mmcast/adapt_teacher_toy.py')


@pytest.fixture(scope='module')
def teacher_checkpoint(tmp_path_factory):
    """A (random) stage-1 teacher saved as MMEngine saves a checkpoint."""
    cfg = Config.fromfile(TEACHER_CONFIG).model
    torch.manual_seed(0)
    teacher = MODELS.build(cfg)
    path = str(tmp_path_factory.mktemp('teacher') / 'teacher.pth')
    torch.save(dict(state_dict=teacher.state_dict(),
                    meta=dict(dataset_meta=dict(classes=CLASSES))), path)
    return path


def _stage_cfg(data_root, work_dir, teacher_checkpoint, max_iters):
    root = data_root.rstrip('/') + '/'
    pseudo = osp.join(work_dir, 'pseudo.json')
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/mmcast/distill_toy.py'))
    cfg.merge_from_dict({
        'model.teacher': TEACHER_CONFIG,
        'model.teacher_checkpoint': teacher_checkpoint,
        'model.student.train_cfg.num_points': 256,
        'train_cfg.max_iters': max_iters,
        'train_cfg.val_interval': 100,
        'param_scheduler.end': 2,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 1,
        'train_dataloader.batch_size': 2,
        'train_dataloader.sampler.batch_size': 2,
        'train_dataloader.sampler.source_ratio': [1, 1],
        'train_dataloader.dataset.datasets.0.data_root': root,
        'train_dataloader.dataset.datasets.0.ann_file': LABELED,
        'train_dataloader.dataset.datasets.1.unlabeled_ann_file':
        root + UNLABELED,
        'train_dataloader.dataset.datasets.1.data_prefix.img':
        root + 'leftImg8bit/train/',
        'train_dataloader.dataset.datasets.1.ann_file': pseudo,
        'custom_hooks.0.out_file': pseudo,
        'custom_hooks.0.unlabeled_dataset.data_root': root,
        'custom_hooks.0.unlabeled_dataset.ann_file': UNLABELED,
        'custom_hooks.0.quality_dataset': None,
        # a random teacher's scores are low: keep its masks anyway
        'custom_hooks.0.filter_cfg.score_thr': 0.0,
    })
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=0)
    return cfg, pseudo


def _teacher_parameters(model) -> int:
    teacher = model.teacher
    return 0 if teacher is None else sum(
        p.numel() for p in teacher.parameters())


def test_offline_stage_frees_the_teacher_trains_and_resumes(
        toy_data_root, teacher_checkpoint, tmp_path):
    work_dir = str(tmp_path / 'work')
    cfg, pseudo = _stage_cfg(toy_data_root, work_dir, teacher_checkpoint, 1)
    runner = Runner.from_cfg(cfg)
    model = runner.model
    assert _teacher_parameters(model) > 0  # built to label
    teacher_param = weakref.ref(next(model.teacher.parameters()))
    student_before = next(model.student.parameters()).detach().clone()

    runner.train()
    gc.collect()
    assert read_header(pseudo)['teacher'].startswith('runner.model.teacher')
    # no teacher left: not on the module, not in the optimizer, not alive
    assert model.teacher is None and _teacher_parameters(model) == 0
    assert teacher_param() is None
    student_ids = {id(p) for p in model.student.parameters()}
    optimized = [p for group in runner.optim_wrapper.optimizer.param_groups
                 for p in group['params']]
    assert optimized and all(id(p) in student_ids for p in optimized)
    # and the stage trained its step without it
    assert runner.iter == 1
    assert math.isfinite(
        runner.message_hub.get_scalar('train/loss').current())
    assert not torch.equal(next(model.student.parameters()), student_before)

    ckpt = osp.join(work_dir, 'iter_1.pth')
    state = torch.load(ckpt, map_location='cpu', weights_only=True)
    assert not any(k.startswith('teacher') for k in state['state_dict'])
    written = os.stat(pseudo).st_mtime_ns

    # --resume: the labels are current, the teacher is freed again
    cfg, _ = _stage_cfg(toy_data_root, work_dir, teacher_checkpoint, 2)
    cfg.resume = True
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 2
    assert os.stat(pseudo).st_mtime_ns == written
    assert _teacher_parameters(resumed.model) == 0
    # the strong view continued its draws from the checkpoint
    assert resumed.model.student.strong_view.num_calls == 2

    # the saved stage still publishes its student
    from mmcast.deploy.publish import publish
    out = publish(
        osp.join(work_dir, 'distill_toy.py'), ckpt, str(tmp_path / 'pub'))
    weights = torch.load(out['checkpoint'], weights_only=True)['state_dict']
    assert weights and not any(
        k.startswith(('student.', 'teacher', '_extra')) for k in weights)


def test_online_wrapper_keeps_its_teacher(teacher_checkpoint):
    cfg = Config.fromfile(osp.join(REPO_ROOT,
                                   'configs/mmcast/distill_toy.py')).model
    cfg.teacher = TEACHER_CONFIG
    cfg.teacher_checkpoint = teacher_checkpoint
    cfg.semi_train_cfg.pseudo_label_mode = 'online'
    model = MODELS.build(cfg)
    assert model.release_teacher() == 0 and _teacher_parameters(model) > 0
    cfg.semi_train_cfg.pseudo_label_mode = 'offline'
    model = MODELS.build(cfg)
    count = _teacher_parameters(model)
    assert model.release_teacher() == count > 0
    assert model.teacher is None and model.teacher_classes == CLASSES
