# Copyright (c) mmcast contributors. All rights reserved.
"""One pipeline per work dir: an exclusive lock held from start to end.

:class:`FolderLock` takes ``fcntl.flock`` on a lock file in the folder and
writes its holder into it (pid, host, start time, command). The kernel
releases the lock when its holder exits, however it exits, so a lock file
whose lock is free was left by a process that is gone: it is taken over
with a note. A second pipeline on a work dir whose lock is held refuses at
once, naming the holder, and writes nothing. Where the file system has no
``flock`` (some network mounts), the recorded pid decides: alive on this
host, or on another host, counts as held.
"""
import datetime
import errno
import fcntl
import json
import os
import os.path as osp
import shlex
import socket
import sys
import time
from typing import Callable, Optional

# The lock file of a pipeline's work dir.
WORK_DIR_LOCK = 'pipeline.lock'
# The lock file of a data folder the pipeline writes (toy data, splits).
DATA_LOCK = '.mmcast_data.lock'


class FolderBusy(RuntimeError):
    """The folder's lock is held by another process.

    Args:
        path (str): The lock file.
        holder (dict): What the holder recorded (pid, host, started,
            command); empty when it recorded nothing readable.
    """

    def __init__(self, path: str, holder: dict) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f'{path} is locked by {describe_holder(holder)}')


def describe_holder(holder: dict) -> str:
    """``pid 123 on host1, started 2026-11-27T10:00:00 (python ...)``."""
    if not holder.get('pid'):
        return 'another process (it recorded nothing)'
    text = f'pid {holder["pid"]} on {holder.get("host", "?")}, started ' \
        f'{holder.get("started", "?")}'
    return text + (f' ({holder["command"]})' if holder.get('command') else '')


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class FolderLock:
    """An exclusive lock on a folder, held until :meth:`release`.

    Args:
        folder (str): The folder (created if missing).
        name (str): The lock file's name in it.
    """

    def __init__(self, folder: str, name: str = WORK_DIR_LOCK) -> None:
        self.folder = folder
        self.path = osp.join(folder, name)
        self._fd: Optional[int] = None
        # the holder that left the lock file, when it was taken over
        self.taken_over: Optional[dict] = None

    def read_holder(self) -> dict:
        """What the lock file records ({} when missing or empty)."""
        try:
            with open(self.path, encoding='utf-8') as f:
                text = f.read().strip()
            holder = json.loads(text) if text else {}
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def held_by_another(self) -> Optional[dict]:
        """The holder of a lock held now by another process (``None``:
        free). Changes nothing."""
        if not osp.isfile(self.path):
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self.read_holder()
        except OSError:  # no flock here: the recorded pid decides
            holder = self.read_holder()
            return holder if self._recorded_alive(holder) else None
        finally:
            os.close(fd)
        return None

    def acquire(self, wait: bool = False,
                on_wait: Optional[Callable[[dict], None]] = None) -> None:
        """Take the lock and record this process in the lock file.

        Args:
            wait (bool): Wait for the holder to finish instead of raising.
            on_wait (callable, optional): Called once with the holder when
                waiting starts.

        Raises:
            FolderBusy: The lock is held by another process (without
                ``wait``).
        """
        os.makedirs(self.folder, exist_ok=True)
        # O_CREAT leaves an existing file as it is: a refused pipeline
        # changes nothing
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock(fd, wait, on_wait)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        left = self.read_holder()
        if left.get('pid') and left.get('pid') != os.getpid():
            self.taken_over = left
        record = dict(pid=os.getpid(), host=socket.gethostname(),
                      started=datetime.datetime.now().isoformat(
                          timespec='seconds'),
                      command=shlex.join([sys.executable] + sys.argv))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode('utf-8'), 0)
        os.fsync(fd)

    def _lock(self, fd: int, wait: bool,
              on_wait: Optional[Callable[[dict], None]]) -> None:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                holder = self.read_holder()
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP,
                                   errno.EINVAL):
                    raise
                holder = self.read_holder()  # no flock: the pid decides
                if not self._recorded_alive(holder):
                    return
            if not wait:
                raise FolderBusy(self.path, holder)
            if not told and on_wait is not None:
                on_wait(holder)
                told = True
            time.sleep(0.5)

    @staticmethod
    def _recorded_alive(holder: dict) -> bool:
        """Whether the recorded holder may still run: its pid alive on this
        host, or any pid on another host (which cannot be checked)."""
        if not holder.get('pid') or holder.get('pid') == os.getpid():
            return False
        if holder.get('host') != socket.gethostname():
            return True
        return _pid_alive(int(holder['pid']))

    def release(self) -> None:
        """Clear the record and release the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:  # e.g. a full disk: the lock goes anyway
            pass
        os.close(self._fd)  # releases the flock
        self._fd = None

    def __enter__(self) -> 'FolderLock':
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
