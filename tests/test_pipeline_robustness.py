# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/cast_pipeline.py`` on a real machine's accidents.

The smallest real pipeline (toy data, ``--methods gd``: the labels-only
baseline then Guided Distillation, 2 iterations each, a checkpoint per
iteration) runs as a user would run it, with faults injected where a
machine makes them:

* the same command started twice at once on one work dir, and a third time
  while the first trains: one runs, the others refuse at once naming the
  holder, and change no file;
* SIGTERM to the pipeline while its stage trains: the stage's processes end
  with it, and the same command resumes the stage;
* the work dir copied elsewhere (the original gone): the copy resumes;
* SIGKILL to the pipeline: its stage's processes end within seconds, and
  the next run takes over the lock it left, with a note;
* a truncated checkpoint in the work dir (as an older version left after a
  full disk): set aside, and the stage resumes from the newest intact one;
  a truncated checkpoint passed as ``--pretrained-teacher``: refused;
* a disk that fills while the stage runs (a small tmpfs where the machine
  lets the tests mount one, else ``ENOSPC`` injected into the checkpoint
  write): no file is left truncated under its final name, the console names
  the cause, and after space is freed the same command resumes and finishes.

A stage pauses (or fills the disk) in its second iteration through a
``sitecustomize`` module on the stages' path, after its first checkpoint.
About 6 minutes on one CPU core.
"""
import glob
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow_fixture(6)

SCRIPT = osp.join(REPO_ROOT, 'tools', 'cast_pipeline.py')
BUSY = 75  # mmcast.apis.pipeline.settings.WORK_DIR_BUSY
# Imported by every Python process started with its folder on the path.
INJECTION = '''
import errno
import os
import time

from mmengine.runner import loops

_run_iter = loops.IterBasedTrainLoop.run_iter


def run_iter(self, data_batch):
    at = self._iter + 1
    if at == int(os.environ.get('MMCAST_TEST_PAUSE_ITER', 0)):
        open(os.environ['MMCAST_TEST_MARK'], 'w').close()
        time.sleep(300)
    if at == int(os.environ.get('MMCAST_TEST_FILL_ITER', 0)):
        with open(os.environ['MMCAST_TEST_FILL_FILE'], 'wb') as f:
            try:  # another program takes what is left of the disk
                while True:
                    f.write(bytes(1 << 20))
                    f.flush()
            except OSError:
                pass
    if at == int(os.environ.get('MMCAST_TEST_ENOSPC_ITER', 0)):
        from mmcast.engine.hooks import atomic_checkpoint_hook as hook
        real_open = hook.atomic_open

        class Full:
            def __init__(self, f):
                self.f = f

            def write(self, data):
                self.f.write(data[:len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        class atomic_open:
            def __init__(self, *args, **kwargs):
                self.ctx = real_open(*args, **kwargs)

            def __enter__(self):
                return Full(self.ctx.__enter__())

            def __exit__(self, *exc):
                return self.ctx.__exit__(*exc)

        hook.atomic_open = atomic_open
    return _run_iter(self, data_batch)


loops.IterBasedTrainLoop.run_iter = run_iter
'''


def _args(work_dir: str, data_root: str, *extra: str) -> list:
    return [sys.executable, SCRIPT, 'toy', '--work-dir', work_dir,
            '--data-root', data_root, '--toy-sizes', '8', '2', '4',
            '--toy-image-size', '64', '128', '--methods', 'gd', '--iters',
            '2=1', '3=1', '--progress-interval', '1', *extra]


class Run:
    """One pipeline process, its output in a file."""

    def __init__(self, args: list, out: str, **env: str) -> None:
        self.out = out
        self.started = time.time()
        with open(out, 'w') as f:
            self.proc = subprocess.Popen(
                args, cwd=REPO_ROOT, stdout=f, stderr=subprocess.STDOUT,
                env=dict(os.environ, PYTHONWARNINGS='ignore', **env))

    @property
    def text(self) -> str:
        with open(self.out, encoding='utf-8') as f:
            return f.read()

    def wait(self, timeout: float = 600) -> int:
        return self.proc.wait(timeout=timeout)


def _wait_for(path: str, run: Run, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not osp.exists(path):
        assert run.proc.poll() is None, run.text[-3000:]
        assert time.time() < deadline, f'no {path}: ' + run.text[-3000:]
        time.sleep(0.2)


def _files(folder: str) -> dict:
    """Every file under ``folder`` with its size and modification time."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = osp.join(root, name)
            st = os.lstat(path)
            found[path] = (st.st_size, st.st_mtime_ns)
    return found


def _stop(run: Run, signum: int) -> dict:
    """Send ``signum`` to the pipeline; how it and its stage processes
    ended."""
    pipeline = psutil.Process(run.proc.pid)
    stage = pipeline.children(recursive=True)
    sent = time.time()
    os.kill(run.proc.pid, signum)
    returncode = run.wait(60)
    _, alive = psutil.wait_procs(stage, timeout=10)
    return dict(returncode=returncode, stage_pids=[p.pid for p in stage],
                alive=[p.pid for p in alive], seconds=time.time() - sent)


def _processes_naming(text: str) -> list:
    """Processes whose command line names ``text`` (a work dir)."""
    found = []
    for proc in psutil.process_iter(['cmdline']):
        if any(text in part for part in proc.info['cmdline'] or ()):
            found.append(proc.pid)
    return found


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """The accidents of the module docstring, in order, on one work dir
    (then its copy)."""
    tmp = tmp_path_factory.mktemp('robustness')
    injection = tmp / 'injection'
    injection.mkdir()
    (injection / 'sitecustomize.py').write_text(INJECTION)
    data_root, work_dir = str(tmp / 'data'), str(tmp / 'work')
    mark = str(tmp / 'paused')
    pause = dict(PYTHONPATH=str(injection), MMCAST_TEST_PAUSE_ITER='2',
                 MMCAST_TEST_MARK=mark)
    seen = dict(work_dir=work_dir, data_root=data_root)
    # the same command twice at once
    first, second = (Run(_args(work_dir, data_root), str(tmp / f'{n}.log'),
                         **pause) for n in ('a', 'b'))
    refused = None
    while refused is None:
        for run in (first, second):
            if run.proc.poll() is not None:
                refused = run
        time.sleep(0.1)
    seen['refused'] = dict(returncode=refused.proc.returncode,
                           text=refused.text,
                           seconds=time.time() - refused.started)
    winner = second if refused is first else first
    _wait_for(mark, winner)  # in the stage's second iteration
    with open(osp.join(work_dir, 'pipeline.lock')) as f:
        seen['holder'] = json.load(f)
    seen['winner_pid'] = winner.proc.pid
    # a third time while it trains (paused: the work dir is quiet)
    before = _files(work_dir)
    third = Run(_args(work_dir, data_root), str(tmp / 'c.log'))
    seen['third'] = dict(returncode=third.wait(120), text=third.text)
    seen['unchanged'] = before == _files(work_dir)
    seen['sigterm'] = _stop(winner, signal.SIGTERM)
    seen['sigterm']['text'] = winner.text
    seen['sigterm']['left'] = _processes_naming(work_dir)
    # the work dir copied, the original gone: resumed there, then killed
    copy = str(tmp / 'copy')
    shutil.copytree(work_dir, copy, symlinks=True)
    shutil.move(work_dir, str(tmp / 'original_moved_away'))
    os.remove(mark)
    killed = Run(_args(copy, data_root), str(tmp / 'd.log'), **pause)
    _wait_for(mark, killed)
    seen['sigkill'] = _stop(killed, signal.SIGKILL)
    seen['sigkill']['text'] = killed.text
    # an older version's truncated checkpoint, recorded as the last one
    stage_dir = osp.join(copy, 'seed0', 'supervised_student')
    with open(osp.join(stage_dir, 'iter_1.pth'), 'rb') as f:
        half = f.read()[:os.path.getsize(f.name) // 2]
    with open(osp.join(stage_dir, 'iter_2.pth'), 'wb') as f:
        f.write(half)
    with open(osp.join(stage_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work_dir, 'seed0', 'supervised_student',
                         'iter_2.pth'))  # the old place, as it was written
    final = Run(_args(copy, data_root), str(tmp / 'e.log'))
    seen['final'] = dict(returncode=final.wait(), text=final.text,
                         stage_dir=stage_dir, work_dir=copy)
    return seen


def test_one_pipeline_per_work_dir(runs):
    """Of two pipelines started at once, one runs; the other, and a third
    started while the first trains, refuse within seconds naming the
    holder, and change no file."""
    refused, holder = runs['refused'], runs['holder']
    assert refused['returncode'] == BUSY, refused['text']
    assert holder['pid'] == runs['winner_pid']
    for text in (refused['text'], runs['third']['text']):
        assert f'is in use by another pipeline (pid {holder["pid"]} on ' \
            f'{holder["host"]}, started {holder["started"]}' in text
        assert 'nothing was written' in text
        assert 'preflight' not in text and 'training' not in text
    assert runs['third']['returncode'] == BUSY
    assert runs['unchanged']
    # refused before any config is read: about the time Python needs to
    # import the stack (the winner, meanwhile, starts its first stage)
    assert refused['seconds'] < 60


def test_sigterm_stops_the_stage_and_the_same_command_resumes(runs):
    """SIGTERM: exit 143 with Ctrl-C's message, no process of the run
    left; the next run of the command resumes the stage from its
    checkpoint (here in a copy of the work dir, the original gone)."""
    stop = runs['sigterm']
    assert stop['returncode'] == 128 + signal.SIGTERM, stop['text']
    assert 'interrupted: the finished stages are kept' in stop['text']
    assert len(stop['stage_pids']) >= 2  # guard, train.py
    assert stop['alive'] == [] and stop['left'] == []
    assert '[baseline] training (stage 1 of 2) ' \
        'configs/mmcast/supervised_student_toy.py for 2 iterations ' \
        '(resumed from iter_1.pth)' in runs['sigkill']['text']


def test_sigkill_takes_the_stage_with_it(runs):
    """SIGKILL to the pipeline: its stage's processes are gone within
    10 s; the next run takes over the lock it left, with a note."""
    kill = runs['sigkill']
    assert kill['returncode'] == -signal.SIGKILL
    assert kill['alive'] == [] and kill['seconds'] < 10 + 1
    assert 'was left by a pipeline that is gone (pid ' in \
        runs['final']['text']


def test_a_truncated_checkpoint_is_set_aside_and_the_stage_resumes(runs):
    """A truncated ``iter_2.pth`` that ``last_checkpoint`` names (in the
    work dir's old place): renamed ``iter_2.pth.damaged``, the stage
    resumes from ``iter_1.pth`` and the run finishes."""
    final = runs['final']
    assert final['returncode'] == 0, final['text'][-3000:]
    stage_dir = final['stage_dir']
    assert f'[seed 0] [baseline] {stage_dir}/iter_2.pth cannot be loaded: ' \
        'set aside as iter_2.pth.damaged' in final['text']
    assert '(resumed from iter_1.pth)' in final['text']
    assert osp.isfile(osp.join(stage_dir, 'iter_2.pth.damaged'))
    from mmcast.utils.checkpoint_loading import load_checkpoint_file
    load_checkpoint_file(osp.join(stage_dir, 'iter_2.pth'), mmap=True)
    with open(osp.join(final['work_dir'], 'results.json')) as f:
        assert set(json.load(f)['rows']) == {'supervised_student',
                                             'guided_distillation'}


def test_a_truncated_teacher_given_by_the_user_is_refused(tmp_path):
    """``--pretrained-teacher`` names a truncated file: the preflight
    refuses it (exit 2) with its path, and leaves it where it is."""
    from test_custom_dataset import make_coco_dataset

    data_root = str(tmp_path / 'data')
    make_coco_dataset(data_root, classes=('apple', 'mug'),
                      category_ids=(3, 11))
    bad = tmp_path / 'teacher.pth'
    bad.write_bytes(b'PK\x03\x04' + bytes(1000))
    proc = subprocess.run(
        [sys.executable, SCRIPT, 'custom-cpu', '--data-root', data_root,
         '--classes', 'apple', 'mug', '--work-dir', str(tmp_path / 'work'),
         '--pretrained-teacher', str(bad), '--dry-run'],
        cwd=REPO_ROOT, capture_output=True, text=True,
        env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f'{bad}: truncated or damaged' in proc.stderr
    assert bad.is_file() and not glob.glob(str(tmp_path / '*.damaged'))


def _mount_tmpfs(folder: str, size: str) -> bool:
    os.makedirs(folder, exist_ok=True)
    return subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}',
                           'tmpfs', folder],
                          capture_output=True).returncode == 0


@pytest.fixture(scope='module')
def full_disk(tmp_path_factory):
    """A disk that fills in the baseline's second iteration, then the same
    command once the space is freed."""
    tmp = tmp_path_factory.mktemp('full_disk')
    injection = tmp / 'injection'
    injection.mkdir()
    (injection / 'sitecustomize.py').write_text(INJECTION)
    mount = str(tmp / 'disk')
    # the preflight wants room for every kept checkpoint (about 1 GB)
    mounted = _mount_tmpfs(mount, '1100m')
    work_dir, filler = osp.join(mount, 'work'), osp.join(mount, 'filler')
    args = _args(work_dir, str(tmp / 'data'))
    fault = dict(MMCAST_TEST_FILL_ITER='2', MMCAST_TEST_FILL_FILE=filler) \
        if mounted else dict(MMCAST_TEST_ENOSPC_ITER='2')
    try:
        failed = Run(args, str(tmp / 'failed.log'),
                     PYTHONPATH=str(injection), **fault)
        seen = dict(mounted=mounted, work_dir=work_dir,
                    returncode=failed.wait(), text=failed.text)
        stage_dir = osp.join(work_dir, 'seed0', 'supervised_student')
        seen['files'] = sorted(os.listdir(stage_dir))
        seen['checkpoints'] = {}
        from mmcast.utils.checkpoint_loading import checkpoint_damage
        for path in glob.glob(osp.join(stage_dir, '*.pth')):
            seen['checkpoints'][osp.basename(path)] = checkpoint_damage(path)
        if mounted:
            os.remove(filler)
        rerun = Run(args, str(tmp / 'rerun.log'))
        seen.update(rerun_returncode=rerun.wait(), rerun=rerun.text)
        return seen
    finally:
        if mounted:
            subprocess.run(['umount', '-l', mount])


def test_a_full_disk_leaves_no_truncated_file_and_is_named(full_disk):
    """The checkpoint of iteration 2 could not be written: no
    ``iter_2.pth`` and no temporary file left, ``iter_1.pth`` whole, the
    console names the full disk (the stage's own log may be cut), and the
    same command resumes from ``iter_1.pth`` and finishes."""
    seen = full_disk
    assert seen['returncode'] == 1, seen['text'][-3000:]
    assert '[seed 0] [baseline] failed (exit 1):' in seen['text']
    assert 'no space left on device: ' in seen['text']
    if seen['mounted']:  # the free space, measured
        assert f'{seen["work_dir"]}/seed0/supervised_student has ' in \
            seen['text'] and ' MiB free' in seen['text']
    assert seen['checkpoints'] == {'iter_1.pth': None}
    assert not [f for f in seen['files'] if f.endswith('.tmp')]
    assert seen['rerun_returncode'] == 0, seen['rerun'][-3000:]
    assert '(resumed from iter_1.pth)' in seen['rerun']
    assert '[seed 0] [guided_distillation] mask AP' in seen['rerun']
