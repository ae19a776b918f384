# Copyright (c) mmcast contributors. All rights reserved.
"""The pipeline's side of the fork server
(:mod:`~mmcast.apis.pipeline.stage_forkserver`): whether a run's stages
start from it, the server's process, and each forked stage as the runner
handles a process (its exit status and processor seconds, a signal, a
wait with a timeout, a kill).

The server starts with the first stage that needs it, with the stages'
environment, its output in ``<work-dir>/fork_server.log``; it imports the
stack once, so that each stage saves what a new Python process spends
importing it (about 8 processor-seconds on a CPU). A stage it cannot fork
(the server failed to start, or refused the request) starts as a fresh
process, as with ``--stage-start fresh``; the runner says why, once.
"""
import json
import os
import os.path as osp
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
from typing import Dict, List, Optional, Tuple

from .launchers import LaunchConfig
from .provenance import training_device
from .settings import REPO_ROOT

FORK_SERVER_LOG = 'fork_server.log'


def forks_stages(launch: LaunchConfig, env: Dict[str, str]) -> bool:
    """Whether the stages of a run start from the fork server: on Linux,
    with ``--launcher none``, ``--stage-start fork`` and the stages on the
    CPU (a CUDA context must not be inherited through ``fork``, and a GPU
    stage's imports weigh little against its training)."""
    return (sys.platform.startswith('linux') and launch.launcher == 'none'
            and launch.stage_start == 'fork'
            and training_device(env) == 'cpu')


class ForkedStage:
    """A stage forked by the server, handled as the runner handles a
    process it started: ``pid`` is its guard's.

    Args:
        conn (socket.socket): The stage's connection to its guard.
        reader: ``conn.makefile('rb')``.
        pid (int): The guard's pid.
        stage_pid (int): The stage's pid (the leader of its group).
    """

    def __init__(self, conn: socket.socket, reader, pid: int,
                 stage_pid: int) -> None:
        self.pid = pid
        self.stage_pid = stage_pid
        self.returncode: Optional[int] = None
        self._conn, self._reader = conn, reader
        self._ended = threading.Event()

    def wait_with_cpu_time(self) -> Tuple[int, float]:
        """Wait for the stage → its exit status and the user + system
        seconds of it and of the processes it waited for. A guard gone
        without answering (killed) takes the stage's group with it."""
        try:
            reply = _message(self._reader.readline())
        except OSError:
            reply = None
        if reply is None:
            self.kill()
            reply = dict(returncode=128 + signal.SIGKILL, cpu_s=0.0)
        self._reader.close()
        self._conn.close()
        self.returncode = reply['returncode']
        self._ended.set()
        return self.returncode, float(reply['cpu_s'])

    def send_signal(self, signum: int) -> None:
        """Signal the guard (SIGTERM: it stops the stage's group)."""
        _kill(lambda: os.kill(self.pid, signum))

    def wait(self, timeout: Optional[float] = None) -> int:
        """The exit status, once :meth:`wait_with_cpu_time` (another
        thread's) has it; ``subprocess.TimeoutExpired`` after
        ``timeout`` seconds."""
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f'stage {self.stage_pid}',
                                            timeout)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL to the guard and to the stage's group."""
        _kill(lambda: os.kill(self.pid, signal.SIGKILL))
        _kill(lambda: os.killpg(self.stage_pid, signal.SIGKILL))


class StageForkServer:
    """The fork server of one pipeline run.

    Args:
        env (dict): The stages' environment (the server's).
        log_file (str): Where the server's own output goes.
    """

    def __init__(self, env: Dict[str, str], log_file: str) -> None:
        self.env = dict(env)
        self.log_file = log_file
        self.broken: Optional[str] = None  # why it forks nothing more
        self._lock = threading.Lock()
        self._proc: Optional[subprocess.Popen] = None
        self._address = ''

    @staticmethod
    def forks(cmd: List[str]) -> bool:
        """Whether ``cmd`` is one the server runs: this Python running a
        script file (MMDetection's ``train.py`` / ``test.py``)."""
        return len(cmd) >= 2 and cmd[0] == sys.executable and \
            cmd[1].endswith('.py') and osp.isfile(cmd[1])

    def start(self, cmd: List[str], log_file: str,
              title: str) -> Optional[ForkedStage]:
        """Fork the stage ``cmd`` (``[python, script, args...]``), its
        output appended to ``log_file``, its command line ``title`` → its
        handle; ``None`` when the server cannot (:attr:`broken` says why):
        nothing started, the caller starts a fresh process."""
        if not self._running():
            return None
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        reader = conn.makefile('rb')
        request = dict(argv=cmd[1:], log=log_file, env=self.env,
                       title=title)
        try:
            conn.connect(self._address)
            conn.sendall(json.dumps(request).encode() + b'\n')
            reply = self._first_reply(conn, reader)
        except OSError:
            reply = None
        if reply is None or 'refused' in reply:
            reader.close()
            conn.close()
            self._break(reply['refused'] if reply else
                        f'the fork server ended (exit {self._exit_code()}, '
                        f'its output: {self.log_file})')
            return None
        return ForkedStage(conn, reader, reply['pid'], reply['stage_pid'])

    def close(self) -> None:
        """End the server (its standard input closed; killed if it has not
        ended 10 s later)."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _running(self) -> bool:
        """Start the server unless it runs (or broke) → whether it runs."""
        with self._lock:
            if self.broken is not None:
                return False
            if self._proc is None:
                self._address = ('\0mmcast-stages-'
                                 f'{os.getpid()}-{secrets.token_hex(8)}')
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                with listener, open(self.log_file, 'a',
                                    encoding='utf-8') as log:
                    listener.bind(self._address)
                    listener.listen(16)
                    self._proc = subprocess.Popen(
                        [sys.executable, '-m', f'{__package__}.'
                         'stage_forkserver', str(os.getpid()),
                         str(listener.fileno())],
                        pass_fds=(listener.fileno(), ),
                        stdin=subprocess.PIPE, stdout=log,
                        stderr=subprocess.STDOUT, env=self.env, cwd=REPO_ROOT)
            return True

    def _first_reply(self, conn: socket.socket, reader) -> Optional[dict]:
        """The server's answer to a request, waited for while the server
        lives (it may still be importing the stack)."""
        while not select.select([conn], [], [], 1.0)[0]:
            if self._proc is None or self._proc.poll() is not None:
                return None
        return _message(reader.readline())

    def _exit_code(self) -> Optional[int]:
        """The server's exit status, once it ended (5 s at most)."""
        try:
            return self._proc.wait(timeout=5) if self._proc else None
        except subprocess.TimeoutExpired:
            return None

    def _break(self, why: str) -> None:
        with self._lock:
            if self.broken is None:
                self.broken = why


def _message(line: bytes) -> Optional[dict]:
    """One JSON line → a dict (``None``: the other end closed)."""
    return json.loads(line) if line.strip() else None


def _kill(send) -> None:
    try:
        send()
    except (ProcessLookupError, PermissionError):
        pass
