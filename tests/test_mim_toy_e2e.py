# Copyright (c) mmcast contributors. All rights reserved.
"""Stock ``mim train`` / ``mim test`` / ``--resume`` drive the toy config."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import toy_cfg_options

CONFIG = 'configs/mmcast/toy/mask2former_r18_1xb4-1500it_toy.py'
MIM = osp.join(osp.dirname(sys.executable), 'mim')


def _mim(args, cwd):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    proc = subprocess.run([MIM] + args, cwd=cwd, capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def trained(repo_root, toy_data_root, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('sup'))
    opts = toy_cfg_options(toy_data_root, work_dir) + [
        'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
        'default_hooks.checkpoint.interval=2', 'param_scheduler.end=6'
    ]
    log = _mim(['train', 'mmdet', CONFIG, '--work-dir', work_dir,
                '--cfg-options'] + opts, repo_root)
    return work_dir, opts, log


def test_train_evaluates_with_coco_and_cityscapes_metrics(trained):
    work_dir, _, log = trained
    assert osp.isfile(osp.join(work_dir, 'iter_4.pth'))
    assert 'coco/segm_mAP' in log
    assert 'cityscapes/mAP' in log


def test_checkpoint_loads_with_weights_only(trained):
    import mmcast  # noqa: F401  (allow-lists MMEngine's globals)
    ckpt = torch.load(osp.join(trained[0], 'iter_4.pth'), map_location='cpu',
                      weights_only=True)
    assert ckpt['meta']['iter'] == 4
    assert 'message_hub' in ckpt and 'optimizer' in ckpt


def test_checkpoint_without_allow_list_is_rejected(trained):
    """The fix is an allow-list, not a global switch-off of the check."""
    code = ('import torch, sys; torch.load(sys.argv[1], weights_only=True)')
    proc = subprocess.run(
        [sys.executable, '-c', code, osp.join(trained[0], 'iter_4.pth')],
        capture_output=True, text=True)
    assert proc.returncode != 0 and 'weights_only' in proc.stderr


def test_mim_test_evaluates_checkpoint(trained, repo_root):
    work_dir, opts, _ = trained
    log = _mim(['test', 'mmdet', CONFIG, '--checkpoint',
                osp.join(work_dir, 'iter_4.pth'), '--work-dir', work_dir,
                '--cfg-options'] + opts, repo_root)
    assert 'coco/segm_mAP' in log and 'cityscapes/mAP' in log


def test_resume_continues_from_last_checkpoint(trained, repo_root):
    work_dir, opts, _ = trained
    opts = [o for o in opts if not o.startswith('train_cfg.max_iters')]
    log = _mim(['train', 'mmdet', CONFIG, '--work-dir', work_dir, '--resume',
                '--cfg-options', 'train_cfg.max_iters=6'] + opts, repo_root)
    assert 'resumed epoch: 0, iter: 4' in log
    assert osp.isfile(osp.join(work_dir, 'iter_6.pth'))
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
    for key in ('loss_pxl', 'pxl_margin', 'pxl_fnr', 'pxl_temperature: 0.0700'):
        assert key in log, key


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
