# Copyright (c) mmcast contributors. All rights reserved.
"""Stock ``mim train`` / ``mim test`` / ``--resume`` drive the toy config.

The training run is long enough to learn: 100 iterations take the tiny
Mask2Former from a mask AP of 0 at its initialisation to 5.8 (AP50 21.5,
Cityscapes mAP 5.1; seed 0, as here) and 11.7 (AP50 25.9; seed 1, the
same settings in a runner) on the 4 validation images of the 64x128 toy
scenes; the test asserts gains well inside that.
"""
import glob
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from conftest import toy_cfg_options

pytestmark = pytest.mark.slow_fixture(4)

CONFIG = 'configs/mmcast/toy/mask2former_r18_1xb4-1500it_toy.py'
MIM = osp.join(osp.dirname(sys.executable), 'mim')
ITERS = 100
# what the trained model must gain on its initialisation (AP / 100)
MIN_GAIN = {
    'coco/segm_mAP': 0.02,
    'coco/segm_mAP_50': 0.08,
    'cityscapes/mAP': 0.02  # cityscapesscripts on the same predictions
}


def _mim(args, cwd):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    proc = subprocess.run([MIM] + args, cwd=cwd, capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _metrics(log: str, mode: str) -> dict:
    """The metrics of the last ``Iter(<mode>)`` summary line of a log."""
    lines = [
        line for line in log.splitlines()
        if f'Iter({mode})' in line and 'coco/segm_mAP:' in line
    ]
    assert lines, f'no Iter({mode}) line with metrics'
    return {
        key: float(value)
        for key, value in re.findall(r'(\S+): (-?[\d.]+)', lines[-1])
    }


@pytest.fixture(scope='module')
def trained(repo_root, toy_data_root, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('sup'))
    opts = toy_cfg_options(toy_data_root, work_dir) + [
        f'train_cfg.max_iters={ITERS}', f'train_cfg.val_interval={ITERS}',
        f'default_hooks.checkpoint.interval={ITERS // 2}',
        f'param_scheduler.end={ITERS + 2}', 'randomness.seed=0'
    ]
    log = _mim(['train', 'mmdet', CONFIG, '--work-dir', work_dir,
                '--cfg-options'] + opts, repo_root)
    return work_dir, opts, log


@pytest.fixture(scope='module')
def initial(trained, repo_root):
    """``mim test`` of the model as initialised (seed 0): its metrics."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import mmcast  # noqa: F401
    work_dir, opts, _ = trained
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(osp.join(repo_root, CONFIG))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    checkpoint = osp.join(work_dir, 'init.pth')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    log = _mim(['test', 'mmdet', CONFIG, '--checkpoint', checkpoint,
                '--work-dir', osp.join(work_dir, 'init'), '--cfg-options'] +
               opts, repo_root)
    return _metrics(log, 'test')


def test_training_learns_the_toy_scenes(trained, initial):
    work_dir, _, log = trained
    assert osp.isfile(osp.join(work_dir, f'iter_{ITERS}.pth'))
    validated = _metrics(log, 'val')
    for key, gain in MIN_GAIN.items():
        assert validated[key] >= initial[key] + gain, (key, validated)


def test_checkpoint_loads_with_weights_only(trained):
    import mmcast  # noqa: F401  (allow-lists MMEngine's globals)
    ckpt = torch.load(osp.join(trained[0], f'iter_{ITERS}.pth'),
                      map_location='cpu', weights_only=True)
    assert ckpt['meta']['iter'] == ITERS
    assert 'message_hub' in ckpt and 'optimizer' in ckpt


def test_checkpoint_without_allow_list_is_rejected(trained):
    """The fix is an allow-list, not a global switch-off of the check."""
    code = ('import torch, sys; torch.load(sys.argv[1], weights_only=True)')
    proc = subprocess.run(
        [sys.executable, '-c', code,
         osp.join(trained[0], f'iter_{ITERS}.pth')],
        capture_output=True, text=True)
    assert proc.returncode != 0 and 'weights_only' in proc.stderr


def test_mim_test_evaluates_checkpoint(trained, repo_root):
    work_dir, opts, train_log = trained
    log = _mim(['test', 'mmdet', CONFIG, '--checkpoint',
                osp.join(work_dir, f'iter_{ITERS}.pth'), '--work-dir',
                work_dir, '--cfg-options'] + opts, repo_root)
    tested, validated = _metrics(log, 'test'), _metrics(train_log, 'val')
    # the same model on the same images: the numbers of the training run
    for key in ('coco/segm_mAP', 'coco/segm_mAP_50', 'cityscapes/mAP'):
        assert tested[key] == pytest.approx(validated[key], abs=1e-3), key


def test_stock_fusion_head_gives_the_same_ap(trained, repo_root):
    """The lean fusion head (training's validation) and MMDetection's
    stock head (upsampling every query mask) on the same checkpoint: the
    same AP, within 0.1 AP points."""
    work_dir, opts, train_log = trained
    log = _mim(['test', 'mmdet', CONFIG, '--checkpoint',
                osp.join(work_dir, f'iter_{ITERS}.pth'), '--work-dir',
                osp.join(work_dir, 'stock_head'), '--cfg-options'] + opts +
               ['model.panoptic_fusion_head.type=MaskFormerFusionHead'],
               repo_root)
    stock, lean = _metrics(log, 'test'), _metrics(train_log, 'val')
    assert lean['coco/segm_mAP_50'] > 0.05  # a model that finds things
    for key in ('coco/segm_mAP', 'coco/segm_mAP_50', 'cityscapes/mAP'):
        assert stock[key] == pytest.approx(lean[key], abs=1e-3), key


def test_resume_continues_from_last_checkpoint(trained, repo_root):
    work_dir, opts, _ = trained
    opts = [o for o in opts if not o.startswith('train_cfg.max_iters')]
    log = _mim(['train', 'mmdet', CONFIG, '--work-dir', work_dir, '--resume',
                '--cfg-options', f'train_cfg.max_iters={ITERS + 2}'] + opts,
               repo_root)
    assert f'resumed epoch: 0, iter: {ITERS}' in log
    assert osp.isfile(osp.join(work_dir, f'iter_{ITERS + 2}.pth'))
    assert sorted(glob.glob(osp.join(work_dir, '*.tmp'))) == []


def test_contrastive_toy_config_logs_pxl_statistics(repo_root, toy_data_root,
                                                     tmp_path):
    config = 'configs/mmcast/toy/cast_mask2former_r18_1xb4-1500it_toy.py'
    work_dir = str(tmp_path)
    opts = toy_cfg_options(toy_data_root, work_dir) + [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'param_scheduler.end=2'
    ]
    log = _mim(['train', 'mmdet', config, '--work-dir', work_dir,
                '--cfg-options'] + opts, repo_root)
    lines = [line for line in log.splitlines() if 'Iter(train) [2/2]' in line]
    assert lines, 'no log line of iteration 2'
    logged = {
        key: float(value)
        for key, value in re.findall(r'(\S+): (-?[\d.]+(?:e[-+]\d+)?)',
                                     lines[-1])
    }
    # L_pxl is one of the terms of the loss that is optimised: the total is
    # the sum of every logged loss term (each rounded to 4 decimals)
    terms = {k: v for k, v in logged.items() if 'loss' in k and k != 'loss'}
    assert logged['loss_pxl'] > 0
    assert logged['loss'] == pytest.approx(sum(terms.values()),
                                           abs=1e-4 * len(terms))
    assert 0 <= logged['pxl_fnr'] <= 1
    assert -2 <= logged['pxl_margin'] <= 2  # cosine distances are in [0, 2]
    assert logged['pxl_temperature'] == pytest.approx(0.07)


def test_killed_run_resumes_to_the_same_iteration_count(repo_root,
                                                         toy_data_root,
                                                         tmp_path):
    """SIGKILL mid-run, then ``--resume``: same final iteration, valid file."""
    import signal
    import time

    work_dir = str(tmp_path)
    opts = toy_cfg_options(toy_data_root, work_dir) + [
        'train_cfg.max_iters=8', 'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=2', 'param_scheduler.end=8'
    ]
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    cmd = [MIM, 'train', 'mmdet', CONFIG, '--work-dir', work_dir,
           '--cfg-options'] + opts
    proc = subprocess.Popen(cmd, cwd=repo_root, env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    marker = osp.join(work_dir, 'last_checkpoint')
    deadline = time.time() + 300
    while not osp.isfile(marker) and time.time() < deadline:
        assert proc.poll() is None, 'training ended before it was killed'
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not osp.isfile(osp.join(work_dir, 'iter_8.pth'))
    log = _mim(['train', 'mmdet', CONFIG, '--work-dir', work_dir, '--resume',
                '--cfg-options'] + opts, repo_root)
    assert 'resumed epoch: 0, iter:' in log
    import mmcast  # noqa: F401
    ckpt = torch.load(osp.join(work_dir, 'iter_8.pth'), map_location='cpu',
                      weights_only=True)
    assert ckpt['meta']['iter'] == 8
