# Copyright (c) mmcast contributors. All rights reserved.
"""Run one stage's command so that it never outlives the pipeline.

The pipeline starts every stage through this guard, run as a script
(``python stage_guard.py PIPELINE_PID COMMAND...``; standard library only,
so it starts before any heavy import). The guard runs the command as the
leader of a new process group, so that the stage and everything it starts
(``mim``, MMDetection's ``train.py``, ``torchrun``'s workers, data loader
workers) form one group, and waits for it. It stops the whole group —
SIGTERM, then SIGKILL after :data:`GRACE_S` seconds — when

* the pipeline asks it to (SIGTERM, SIGINT or SIGHUP to the guard), or
* the pipeline is gone (killed with SIGKILL, or by the OOM killer): on
  Linux the kernel tells the guard at once (``PR_SET_PDEATHSIG``); anywhere
  it notices within :data:`POLL_S` seconds that its parent changed.

Its exit status is the command's (128 + N when signal N ended it), so
nothing writes into a work dir after its pipeline is gone.
"""
import ctypes
import os
import signal
import subprocess
import sys
import time
from typing import List, Optional

GRACE_S = 5.0
POLL_S = 0.5
_PR_SET_PDEATHSIG = 1


def signal_on_parent_death(signum: int) -> None:
    """Ask Linux to send ``signum`` when the parent process dies."""
    if not sys.platform.startswith('linux'):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the polling remains
        pass


def kill_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the command's group, SIGKILL to what remains of it after
    :data:`GRACE_S` seconds."""
    kill_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    # also the group's other members (e.g. workers of a finished parent)
    kill_group(proc.pid, signal.SIGKILL)
    proc.wait()


def exit_status(returncode: int) -> int:
    """A ``Popen`` return code as a shell's exit status (``128 + N`` for
    signal N)."""
    return 128 - returncode if returncode < 0 else returncode


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or not argv[0].isdigit():
        print('usage: stage_guard.py PIPELINE_PID COMMAND...',
              file=sys.stderr)
        return 2
    pipeline_pid, command = int(argv[0]), argv[1:]
    stop_requested: List[int] = []

    def request_stop(signum, frame) -> None:
        stop_requested.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, request_stop)
    signal_on_parent_death(signal.SIGTERM)
    if os.getppid() != pipeline_pid:  # gone before the request took hold
        return 128 + signal.SIGTERM
    proc = subprocess.Popen(command, process_group=0)
    while proc.poll() is None:
        if stop_requested or os.getppid() != pipeline_pid:
            _stop(proc)
            return 128 + (stop_requested or [signal.SIGTERM])[0]
        try:
            proc.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass
    return exit_status(proc.returncode)


if __name__ == '__main__':
    sys.exit(main())
