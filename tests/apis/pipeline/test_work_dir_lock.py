# Copyright (c) mmcast contributors. All rights reserved.
"""One pipeline per work dir (``FolderLock``).

The lock records its holder and clears the record on release; a lock held
by another process is refused with ``FolderBusy`` naming that process; a
lock file left by a process that is gone is taken over (``taken_over``
names it); ``wait=True`` waits for the holder to release. The other
process is a small Python process that loads ``work_dir_lock.py`` alone
(standard library only), so it starts at once.
"""
import os
import socket
import subprocess
import sys
import threading

import pytest

from conftest import REPO_ROOT
from mmcast.apis.pipeline import FolderBusy, FolderLock
from mmcast.apis.pipeline.work_dir_lock import WORK_DIR_LOCK, describe_holder

MODULE = f'{REPO_ROOT}/mmcast/apis/pipeline/work_dir_lock.py'
# argv: folder, then 'hold' (release on a line of stdin) or 'die' (exit
# holding it, as a killed pipeline does)
HOLDER = f'''
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location('work_dir_lock', {MODULE!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
lock = module.FolderLock(sys.argv[1])
lock.acquire()
print('held', flush=True)
if sys.argv[2] == 'die':
    os._exit(0)
sys.stdin.readline()
lock.release()
print('released', flush=True)
sys.stdin.readline()
'''


class Holder:
    """Another process holding the lock of ``folder``."""

    def __init__(self, folder, mode: str = 'hold') -> None:
        self.proc = subprocess.Popen(
            [sys.executable, '-c', HOLDER, str(folder), mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline() == 'held\n'

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        self.proc.stdin.write('\n')
        self.proc.stdin.flush()

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # its readline returns: it exits
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


@pytest.fixture
def holders():
    started = []
    yield lambda *args: started.append(Holder(*args)) or started[-1]
    for holder in started:
        holder.end()


def test_acquire_records_and_release_clears(tmp_path):
    folder = tmp_path / 'run'
    lock = FolderLock(str(folder))
    lock.acquire()
    holder = lock.read_holder()
    assert lock.path == str(folder / WORK_DIR_LOCK)
    assert holder['pid'] == os.getpid()
    assert holder['host'] == socket.gethostname()
    assert lock.taken_over is None
    lock.release()
    assert lock.read_holder() == {}
    lock.release()  # twice: nothing
    with FolderLock(str(folder)) as again:  # free again
        assert again.read_holder()['pid'] == os.getpid()
        assert again.taken_over is None  # a released lock is no takeover
    assert FolderLock(str(folder)).held_by_another() is None


def test_a_lock_held_by_another_process_is_refused(tmp_path, holders):
    holder = holders(tmp_path)
    lock = FolderLock(str(tmp_path))
    assert lock.held_by_another()['pid'] == holder.pid
    with pytest.raises(FolderBusy) as busy:
        lock.acquire()
    assert busy.value.holder['pid'] == holder.pid
    assert busy.value.path == lock.path
    assert f'pid {holder.pid}' in str(busy.value)
    assert f'pid {holder.pid}' in describe_holder(busy.value.holder)
    # the refused lock changed nothing: the record is still the holder's
    assert lock.read_holder()['pid'] == holder.pid


def test_a_lock_left_by_a_process_that_is_gone_is_taken_over(tmp_path,
                                                             holders):
    gone = holders(tmp_path, 'die')
    gone.end()
    lock = FolderLock(str(tmp_path))
    assert lock.read_holder()['pid'] == gone.pid  # its record is left
    assert lock.held_by_another() is None
    lock.acquire()
    try:
        assert lock.taken_over['pid'] == gone.pid
        assert lock.read_holder()['pid'] == os.getpid()
    finally:
        lock.release()


def test_wait_waits_for_the_holder(tmp_path, holders):
    holder = holders(tmp_path)
    waited = []

    def on_wait(record: dict) -> None:
        waited.append(record)
        holder.release()  # let it go once we are waiting

    lock = FolderLock(str(tmp_path))
    done = threading.Event()
    timer = threading.Timer(30, lambda: done.is_set() or holder.end())
    timer.start()  # a lock that never waits fails, not hangs
    try:
        lock.acquire(wait=True, on_wait=on_wait)
    finally:
        done.set()
        timer.cancel()
    try:
        assert [w['pid'] for w in waited] == [holder.pid]
        assert holder.proc.stdout.readline() == 'released\n'
        assert lock.read_holder()['pid'] == os.getpid()
        assert lock.taken_over is None
        with pytest.raises(FolderBusy):  # and now it holds it
            FolderLock(str(tmp_path)).acquire()
    finally:
        lock.release()
