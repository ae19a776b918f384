# Copyright (c) mmcast contributors. All rights reserved.
"""Stages launched on one process, ``torchrun`` over nodes, or Slurm.

The commands are composed as MMDetection's ``dist_train.sh`` /
``slurm_train.sh`` compose them (checked against the shipped scripts run
with a stand-in ``srun`` that records its arguments: the composition, not a
cluster); the pipeline launches its stages with them; and two ``torchrun``
"nodes" on localhost (``--nnodes 2``, gloo) train the toy model to the same
weights as one node with the same global batch.
"""
import importlib
import json
import os
import os.path as osp
import socket
import stat
import subprocess
import sys
import pytest
import torch

import mmcast  # noqa: F401  (MMEngine checkpoints load with weights_only)
from conftest import REPO_ROOT, pipeline_of, toy_cfg_options
from mmcast.apis.pipeline.launchers import LaunchConfig, stage_command
from mmcast.apis.pipeline import PipelineError, StageRunner

TOY = 'configs/mmcast/toy/mask2former_r18_1xb4-1500it_toy.py'


def _mim_command(mode: str, config: str, args: list,
                 monkeypatch) -> list:
    """The command ``mim train|test mmdet CONFIG ARGS`` runs (mim's own
    composition, its help probe of train.py included; the command itself
    recorded, not run)."""
    module = importlib.import_module(f'mim.commands.{mode}')
    run = []
    monkeypatch.setattr(module.subprocess, 'check_call',
                        lambda cmd, **kwargs: run.append(cmd) or 0)
    kwargs = dict(other_args=tuple(args))
    if mode == 'test' and '--checkpoint' in args:
        i = args.index('--checkpoint')
        kwargs = dict(checkpoint=args[i + 1],
                      other_args=tuple(args[:i] + args[i + 2:]))
    ok, message = getattr(module, mode)('mmdet', config, gpus=0, **kwargs)
    assert ok, message
    return run[0]


@pytest.mark.parametrize('mode,extra', [
    ('train', ['--resume', '--cfg-options', 'a=1']),
    ('test', ['--checkpoint', 'x.pth', '--cfg-options', 'a=1']),
])
def test_one_process_runs_what_mim_runs(mode, extra, monkeypatch):
    """``--launcher none``: the command that ``mim train|test mmdet
    CONFIG --work-dir WD ...`` starts, without mim's own process (and, for
    train, its ``train.py -h``)."""
    config = osp.join(REPO_ROOT, TOY)
    mim = _mim_command(mode, config, ['--work-dir', 'wd'] + extra,
                       monkeypatch)
    assert stage_command(mode, config, 'wd', extra, LaunchConfig()) == mim


def test_commands_of_each_launcher():
    node1 = stage_command(
        'train', 'c.py', 'wd', ['--cfg-options', 'a=1'],
        LaunchConfig('pytorch', nproc=4, nnodes=2, node_rank=1,
                     master_addr='10.0.0.1', master_port=29600))
    assert node1[1:9] == [
        '-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1',
        '--master_addr=10.0.0.1', '--master_port=29600',
        '--nproc_per_node=4', node1[8]]
    assert node1[8].endswith(osp.join('mmdet', '.mim', 'tools', 'train.py'))
    assert node1[9:] == ['c.py', '--cfg-options', 'a=1', '--launcher',
                         'pytorch', '--work-dir', 'wd']
    test = stage_command('test', 'c.py', 'wd',
                         ['--checkpoint', 'x.pth', '--cfg-options', 'a=1'],
                         LaunchConfig('pytorch', nproc=2))
    # MMDetection's test.py: CONFIG CHECKPOINT
    assert test[test.index('c.py') + 1] == 'x.pth'
    assert '--checkpoint' not in test


@pytest.mark.parametrize('bad,match', [
    (dict(launcher='slurm'), 'partition'),
    (dict(launcher='none', nproc=2), 'pytorch or slurm'),
    (dict(launcher='pytorch', nnodes=2, node_rank=2), 'node_rank'),
    (dict(launcher='mpi'), 'launcher'),
])
def test_bad_launch_settings_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        LaunchConfig(**bad)


def _recording_srun(tmp_path) -> dict:
    """A ``srun`` on PATH that writes its arguments to a json file."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    record = tmp_path / 'srun.json'
    srun = bin_dir / 'srun'
    srun.write_text('#!/usr/bin/env python3\nimport json, sys\n'
                    f'json.dump(sys.argv[1:], open({str(record)!r}, "w"))\n')
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    return dict(env=env, record=record)


def _srun_options(args):
    """srun's own options: everything before the program it starts."""
    end = next(i for i, a in enumerate(args) if 'python' in osp.basename(a))
    return args[:end]


def test_slurm_script_and_pipeline_compose_the_same_srun(tmp_path):
    srun = _recording_srun(tmp_path)
    env = dict(srun['env'], GPUS='16', GPUS_PER_NODE='8',
               SRUN_ARGS='--quotatype=auto')
    subprocess.run(['bash', 'tools/slurm_train.sh', 'gpu', 'distill',
                    'configs/mmcast/distill_cityscapes.py', 'wd',
                    '--cfg-options', 'a=1'], cwd=REPO_ROOT, env=env,
                   check=True, capture_output=True)
    script = json.loads(srun['record'].read_text())
    assert _srun_options(script) == [
        '-p', 'gpu', '--job-name=distill', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1',
        '--quotatype=auto']
    assert script[-4:] == ['--work-dir=wd', '--launcher=slurm',
                           '--cfg-options', 'a=1']
    pipeline = pipeline_of(
        'toy', '--work-dir', str(tmp_path / 'run'), '--launcher', 'slurm',
        '--partition', 'gpu', '--nproc', '8', '--nnodes', '2',
        '--srun-args=--quotatype=auto')
    cmd = StageRunner(pipeline.spec, pipeline.loader)._command(
        'train', 'configs/mmcast/distill_cityscapes.py', 'distill',
        ['--cfg-options', 'a=1'])
    assert cmd[0] == 'srun'
    assert _srun_options(cmd[1:]) == _srun_options(script)
    assert cmd[-4:] == ['--launcher', 'slurm', '--work-dir', 'distill']
    with pytest.raises(PipelineError, match='partition'):
        pipeline_of('toy', '--work-dir', str(tmp_path / 'run'), '--launcher',
                    'slurm')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _torchrun(nnodes, node_rank, nproc, port, work_dir, options):
    path = f'{osp.dirname(sys.executable)}{os.pathsep}{os.environ["PATH"]}'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore',
               PATH=path, MMCAST_CPU_DIST='1', NNODES=str(nnodes),
               NODE_RANK=str(node_rank), PORT=str(port))
    return subprocess.Popen(
        ['bash', 'tools/dist_train.sh', TOY, str(nproc), '--work-dir',
         work_dir, '--cfg-options'] + options,
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)


def _weights(work_dir):
    return torch.load(osp.join(work_dir, 'iter_2.pth'), map_location='cpu',
                      weights_only=True)['state_dict']


def test_two_nodes_train_like_one(toy_data_root, tmp_path):
    """``dist_train.sh`` with NNODES=2 (a process per node) and with one
    node of 2 processes: the same global batch of 2, the same weights."""
    runs = {}
    for name, layout in (('one_node', [(1, 0, 2)]),
                         ('two_nodes', [(2, 0, 1), (2, 1, 1)])):
        work_dir = str(tmp_path / name)
        options = toy_cfg_options(toy_data_root, work_dir) + [
            'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
            'param_scheduler.end=2', 'train_dataloader.batch_size=1',
            'default_hooks.checkpoint.interval=2', 'randomness.seed=0']
        port = _free_port()
        procs = [_torchrun(n, r, p, port, work_dir, options)
                 for n, r, p in layout]
        for proc in procs:
            out, _ = proc.communicate(timeout=900)
            assert proc.returncode == 0, out[-3000:]
        runs[name] = _weights(work_dir)
    one, two = runs['one_node'], runs['two_nodes']
    assert one.keys() == two.keys()
    for key in one:
        assert torch.equal(one[key], two[key]), key
