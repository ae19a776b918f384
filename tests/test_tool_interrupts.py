# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/pseudo_label.py`` stopped by Ctrl-C (SIGINT) or SIGTERM ends
with one line (the images kept of all, how to go on), exit 130 / 143 and
no traceback, and the same command resumes; ``tools/make_toy_dataset.py``
and ``tools/smoke_real_configs.py`` stopped by Ctrl-C end with one line and
exit 130.

The tool runs on 8 generated images with the toy Mask2Former teacher;
a ``sitecustomize`` module on its path pauses it once the first
``PAUSE_BATCH`` batches are written (a mark file tells the test), so the
signal comes at a known point: ``PAUSE_BATCH * BATCH`` images kept.
"""
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO_ROOT, load_script
from test_bad_input import _teacher_config
from test_pseudo_labels import make_data

from mmcast.pseudo_labels import read_header

NUM_IMAGES, BATCH, PAUSE_BATCH = 8, 2, 2
STOPPED = re.compile(r'interrupted after (\d+) of (\d+) images; run the same '
                     r'command to resume')
INJECTION = '''
import os
import signal
import time

# Ctrl-C raises KeyboardInterrupt even under a runner that ignores SIGINT
signal.signal(signal.SIGINT, signal.default_int_handler)
from mmcast.pseudo_labels import shard_writer  # noqa: E402

_submit = shard_writer.ShardWriter.submit
_batches = [0]


def submit(self, *args):
    _submit(self, *args)
    _batches[0] += 1
    if _batches[0] == int(os.environ['MMCAST_TEST_PAUSE_BATCH']):
        self.drain()  # those batches are on disk
        open(os.environ['MMCAST_TEST_MARK'], 'w').close()
        time.sleep(120)


shard_writer.ShardWriter.submit = submit
'''


@pytest.fixture(scope='module')
def teacher(tmp_path_factory):
    """The unlabeled images, a toy Mask2Former teacher config and its
    (random) checkpoint, and the pausing ``sitecustomize``."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    register_all_modules(init_default_scope=False)
    root = tmp_path_factory.mktemp('tool_interrupts')
    make_data(str(root), num=NUM_IMAGES)
    cfg = _teacher_config(root)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(Config.fromfile(cfg).model)
    ckpt = str(root / 'teacher.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    injection = root / 'injection'
    injection.mkdir()
    (injection / 'sitecustomize.py').write_text(INJECTION)
    return dict(root=root, cfg=cfg, ckpt=ckpt, injection=str(injection))


def _command(teacher, out):
    return [sys.executable, osp.join(REPO_ROOT, 'tools', 'pseudo_label.py'),
            teacher['cfg'], teacher['ckpt'], '--unlabeled-ann',
            str(teacher['root'] / 'u.json'), '--data-root',
            str(teacher['root']), '--img-prefix', 'img/', '--out', out,
            '--score-thr', '0.0', '--batch-size', str(BATCH), '--vis-num',
            '0']


def _env(teacher, *path):
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path + (REPO_ROOT, )),
                OMP_NUM_THREADS='2', PYTHONWARNINGS='ignore',
                MMCAST_CACHE_DIR=str(teacher['root'] / 'cache'))


def _stopped_by(teacher, out, signum):
    """Run the tool until it pauses, send ``signum``; its exit status,
    stdout and stderr."""
    mark = out + '.paused'
    proc = subprocess.Popen(
        _command(teacher, out), cwd=REPO_ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        env=dict(_env(teacher, teacher['injection']),
                 MMCAST_TEST_PAUSE_BATCH=str(PAUSE_BATCH),
                 MMCAST_TEST_MARK=mark))
    try:
        deadline = time.time() + 120
        while not osp.exists(mark):
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, 'the tool never paused'
            time.sleep(0.1)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, stdout, stderr


def _last_line(stderr):
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines, 'nothing on stderr'
    return lines[-1]


def test_ctrl_c_says_what_is_kept_and_the_same_command_resumes(
        teacher, tmp_path):
    out = str(tmp_path / 'pl.json')
    status, _, stderr = _stopped_by(teacher, out, signal.SIGINT)
    assert status == 130, stderr[-3000:]
    assert 'Traceback' not in stderr, stderr[-3000:]
    stopped = STOPPED.fullmatch(_last_line(stderr))
    assert stopped, stderr[-3000:]
    kept, total = map(int, stopped.groups())
    assert total == NUM_IMAGES and kept == PAUSE_BATCH * BATCH
    assert not osp.exists(out)

    rerun = subprocess.run(_command(teacher, out), cwd=REPO_ROOT,
                           capture_output=True, text=True,
                           env=_env(teacher))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f'resuming, {kept} of {total} images already' in rerun.stdout
    assert f'pseudo-labeling rank 0: {total - kept} images in' in \
        rerun.stdout, rerun.stdout[-3000:]
    assert read_header(out)['num_images'] == total


def test_sigterm_stops_as_ctrl_c_with_143(teacher, tmp_path):
    out = str(tmp_path / 'pl.json')
    status, _, stderr = _stopped_by(teacher, out, signal.SIGTERM)
    assert status == 143, stderr[-3000:]
    assert 'Traceback' not in stderr, stderr[-3000:]
    stopped = STOPPED.fullmatch(_last_line(stderr))
    assert stopped, stderr[-3000:]
    assert list(map(int, stopped.groups())) == [PAUSE_BATCH * BATCH,
                                                NUM_IMAGES]


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def _main(tool, argv):
    """``tool.main(argv)``; a ``KeyboardInterrupt`` it lets out fails the
    test (instead of stopping pytest)."""
    try:
        return tool.main(argv)
    except KeyboardInterrupt:
        pytest.fail(f'{tool.__name__} let the KeyboardInterrupt out')


def test_make_toy_dataset_ctrl_c_one_line_130(tmp_path, monkeypatch,
                                              capsys):
    tool = load_script(osp.join(REPO_ROOT, 'tools', 'make_toy_dataset.py'))
    monkeypatch.setattr(tool, 'make_toy_dataset', _interrupt)
    with pytest.raises(SystemExit) as stop:
        _main(tool, ['--out', str(tmp_path / 'toy'), '--no-progress'])
    assert stop.value.code == 130
    assert capsys.readouterr().err.splitlines() == [
        f'interrupted: {tmp_path / "toy"} is incomplete (nothing of it is '
        'reused); run the same command to write it again']


def test_smoke_real_configs_ctrl_c_one_line_130(tmp_path, monkeypatch,
                                                capsys):
    tool = load_script(osp.join(REPO_ROOT, 'tools', 'smoke_real_configs.py'))
    monkeypatch.setattr(tool, 'FREE_DISK_GIB', 0)
    monkeypatch.setattr(tool.SmokeRun, 'write_data', _interrupt)
    work_dir = str(tmp_path / 'smoke')
    os.makedirs(osp.join(work_dir, 'checkpoints'))  # random weights: deleted
    assert _main(tool, ['--work-dir', work_dir]) == 130
    assert capsys.readouterr().err.splitlines() == [
        f'interrupted after 0 runs (their logs are kept in {work_dir}, no '
        'summary.json); the smoke runs do not resume: run the same command '
        'to start again']
    assert os.listdir(work_dir) == []
