# Copyright (c) mmcast contributors. All rights reserved.
"""A stage stopped by Ctrl-C and resumed (``--resume``) on a CPU ends with
the checkpoint of a run that was never stopped: the labels-only student
(also with a worker process loading its data, evaluated on the way),
CAST's stage 2 and Guided Distillation (resumed before and after its
switch), each through MMEngine's real Runner on the shipped config,
tiny. ``RandomStateHook`` (``default_hooks.random_state``) makes it so."""
import glob
import os.path as osp
import shutil

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

import mmcast  # noqa: F401
from conftest import REPO_ROOT
from mmcast.engine.hooks.random_state_hook import CHECKPOINT_KEY
from mmcast.utils.config_files import load_config

register_all_modules()
MAX_ITERS = 4
SPLIT = 'annotations/semi/instancesonly_filtered_gtFine_train.1@25'
CLASSES = ('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
           'bicycle')
SUPERVISED = 'configs/mmcast/supervised_student_toy.py'
DISTILL = 'configs/mmcast/distill_toy.py'
GUIDED = 'configs/mmcast/guided_distillation/guided-distillation_r18_toy.py'
TEACHER = 'configs/mmcast/adapt_teacher_toy.py'


@HOOKS.register_module(force=True)
class _CtrlCAfter(Hook):
    """Raises KeyboardInterrupt once iteration ``at`` has ended (and its
    checkpoint, if any, was saved), as a Ctrl-C there would."""
    priority = 'LOWEST'

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.at:
            raise KeyboardInterrupt


@pytest.fixture(scope='module')
def checkpoints(toy_data_root, tmp_path_factory):
    """Random R-34 teacher (stage 2's) and R-18 student (GD's supervised
    teacher) checkpoints, saved as MMEngine saves them."""
    folder = tmp_path_factory.mktemp('resume_teachers')
    paths = {}
    for name, config in (('teacher', TEACHER), ('student', SUPERVISED)):
        torch.manual_seed(0)
        model = MODELS.build(_config(config, toy_data_root).model)
        paths[name] = str(folder / f'{name}.pth')
        torch.save(dict(state_dict=model.state_dict(),
                        meta=dict(dataset_meta=dict(classes=CLASSES))),
                   paths[name])
    return paths


def _config(config: str, data_root: str):
    return load_config(config, dict(MMCAST_TOY_ROOT=data_root + '/'),
                       REPO_ROOT)


def _stage(name: str, data_root: str, checkpoints: dict, work_dir: str,
           checkpoint_interval: int, val: bool = False,
           num_workers: int = 0, stop_after: int = None):
    """The stage's shipped config, tiny (4 iterations, batch 2, 256 mask
    points), on the toy split, trained in ``work_dir``."""
    config = dict(supervised=SUPERVISED, distill=DISTILL, gd=GUIDED)[name]
    cfg = _config(config, data_root)
    options = {
        'train_cfg.max_iters': MAX_ITERS,
        'train_cfg.val_interval': 2 if val else 100,
        'param_scheduler.end': MAX_ITERS,
        'default_hooks.checkpoint.interval': checkpoint_interval,
        'default_hooks.checkpoint.max_keep_ckpts': -1,
        'default_hooks.logger.interval': 1,
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': num_workers,
        'train_dataloader.persistent_workers': num_workers > 0,
    }
    model = 'model.student.' if name != 'supervised' else 'model.'
    options[model + 'train_cfg.num_points'] = 256
    if name == 'supervised':
        options['train_dataloader.dataset.ann_file'] = SPLIT + '.json'
    else:
        labeled = 'train_dataloader.dataset.datasets.0.'
        options.update({labeled + 'ann_file': SPLIT + '.json',
                        'train_dataloader.sampler.batch_size': 2})
    if name == 'distill':
        pseudo = osp.join(work_dir, 'pseudo.json')
        unlabeled = 'train_dataloader.dataset.datasets.1.'
        options.update({
            'model.teacher': osp.join(REPO_ROOT, TEACHER),
            'model.teacher_checkpoint': checkpoints['teacher'],
            unlabeled + 'ann_file': pseudo,
            unlabeled + 'unlabeled_ann_file':
            f'{data_root}/{SPLIT}-unlabeled.json',
            'custom_hooks.0.out_file': pseudo,
            'custom_hooks.0.unlabeled_dataset.ann_file':
            f'{SPLIT}-unlabeled.json',
            'custom_hooks.0.quality_dataset': None,
            'custom_hooks.0.filter_cfg.score_thr': 0.0,
        })
    if name == 'gd':
        options.update({
            'model.teacher_checkpoint': checkpoints['student'],
            'custom_hooks.0.burn_in_iters': 2,
        })
    cfg.merge_from_dict(options)
    if not val:
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=0)
    if stop_after is not None:
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
            dict(type='_CtrlCAfter', at=stop_after)]
    return cfg


def _train(cfg, resume: bool = False) -> str:
    cfg.resume = resume
    Runner.from_cfg(cfg).train()
    return osp.join(cfg.work_dir, f'iter_{MAX_ITERS}.pth')


def _stopped_and_resumed(make, work_dir: str, stop_after: int) -> str:
    with pytest.raises(KeyboardInterrupt):
        _train(make(work_dir, stop_after=stop_after))
    return _train(make(work_dir), resume=True)


def _assert_same_checkpoint(path: str, expected: str) -> None:
    got = torch.load(path, map_location='cpu', weights_only=False)
    want = torch.load(expected, map_location='cpu', weights_only=False)
    assert got['state_dict'].keys() == want['state_dict'].keys()
    differ = [k for k, v in want['state_dict'].items()
              if not torch.equal(got['state_dict'][k], v)]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:3]}'
    moments = [(k, s) for k, s in want['optimizer']['state'].items()]
    assert moments
    for key, state in moments:
        for name, value in state.items():
            assert torch.equal(got['optimizer']['state'][key][name], value)
    assert got['message_hub']['log_scalars']['train/loss'].data[0].tolist() \
        == want['message_hub']['log_scalars']['train/loss'].data[0].tolist()


@pytest.mark.parametrize('name,interval,stops', [
    ('supervised', 2, (3, )),
    ('distill', 2, (3, )),
    # before the switch (burn-in 2: resumed from iteration 1) and after it
    ('gd', 1, (1, 3)),
])
def test_a_stage_resumed_after_ctrl_c_ends_as_one_never_stopped(
        toy_data_root, checkpoints, tmp_path, name, interval, stops):
    def make(work_dir, **kwargs):
        return _stage(name, toy_data_root, checkpoints, str(work_dir),
                      interval, **kwargs)

    expected = _train(make(tmp_path / 'through'))
    for stop in stops:
        resumed = _stopped_and_resumed(make, tmp_path / f'stopped{stop}',
                                       stop)
        _assert_same_checkpoint(resumed, expected)


def test_a_stage_that_labels_trains_as_one_finding_its_labels(
        toy_data_root, checkpoints, tmp_path):
    """Stage 2 labelling its unlabeled set (the teacher's inference, a new
    loader) and stage 2 finding the same labels current (a redone stage,
    a rerun): the same final checkpoint."""
    def make(work_dir):
        return _stage('distill', toy_data_root, checkpoints, str(work_dir),
                      2)

    labelled = _train(make(tmp_path / 'labels'))
    (tmp_path / 'finds').mkdir()
    shutil.copy(tmp_path / 'labels' / 'pseudo.json',
                tmp_path / 'finds' / 'pseudo.json')
    found = _train(make(tmp_path / 'finds'))
    assert 'pseudo.json is current (same teacher' in _log(
        tmp_path / 'finds')
    _assert_same_checkpoint(found, labelled)


def _log(work_dir) -> str:
    (log, ) = glob.glob(str(work_dir / '*' / '*.log'))
    with open(log) as f:
        return f.read()


def test_a_worker_process_and_evaluations_on_the_way_change_nothing(
        toy_data_root, checkpoints, tmp_path):
    """A worker process loading the data (its transforms draw from its own
    states, put back by MMEngine's replay) and an evaluation at iteration 2
    (it draws from states set aside): the run never stopped evaluates, the
    stopped and resumed one does not, and they end the same."""
    def make(work_dir, **kwargs):
        return _stage('supervised', toy_data_root, checkpoints,
                      str(work_dir), 2, num_workers=1, **kwargs)

    evaluated = _train(make(tmp_path / 'evaluated', val=True))
    resumed = _stopped_and_resumed(make, tmp_path / 'stopped', 3)
    _assert_same_checkpoint(resumed, evaluated)


def test_the_checkpoint_holds_the_states_and_load_from_ignores_them(
        toy_data_root, checkpoints, tmp_path):
    """Each checkpoint holds one rank's states; a run that only loads a
    checkpoint (``load_from``: the next stage starting from it) keeps the
    states its seed set, as without the hook."""
    cfg = _stage('supervised', toy_data_root, checkpoints,
                 str(tmp_path / 'first'), 2)
    first = _train(cfg)
    saved = torch.load(first, map_location='cpu', weights_only=False)
    (states, ) = saved[CHECKPOINT_KEY]
    assert set(states) >= {'python', 'numpy', 'torch'}

    def start_from(work_dir, hook: bool) -> str:
        cfg = _stage('supervised', toy_data_root, checkpoints, work_dir, 2)
        cfg.load_from = first
        if not hook:
            cfg.default_hooks.pop('random_state')
        return _train(cfg)

    _assert_same_checkpoint(start_from(str(tmp_path / 'with'), True),
                            start_from(str(tmp_path / 'without'), False))

