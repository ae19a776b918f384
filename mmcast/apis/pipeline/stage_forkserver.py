# Copyright (c) mmcast contributors. All rights reserved.
"""The fork server: one process that imports the stack once and forks each
stage from itself.

A stage process of ``--launcher none`` spends about 8 processor-seconds
importing torch, MMEngine, MMDetection (whose datasets import
``transformers``) and mmcast before it reads its config: more than a stage
of a few iterations trains. The pipeline starts this module once a run
(``python -m mmcast.apis.pipeline.stage_forkserver PIPELINE_PID FD``, with
the stages' environment; :class:`~mmcast.apis.pipeline.forked_stages.
StageForkServer` is its client); it imports what MMDetection's
``tools/train.py`` and ``tools/test.py`` import, freezes the heap
(``gc.freeze``) and answers requests on the listening Unix socket ``FD``,
one connection a stage:

* the request: one JSON line ``{"argv": [script, args...], "log": path,
  "env": {...}, "title": command line}``; refused (the
  client then starts a fresh process) when its environment is not the
  server's, which the imports have read;
* the server forks a **guard** for it, which forks the **stage**: the
  leader of a new process group, its output appended to ``log``, its
  command line (``ps``, ``/proc``) set to ``title`` where ``setproctitle``
  is installed, the random generators in a fresh process's state, in the
  server's folder (the pipeline starts it in the repository, where every
  stage runs), and the
  script run as ``python script args...`` would run it (``sys.argv``,
  ``sys.path[0]``, ``__main__``, its traceback from the script's own frame,
  exit handlers, the exit status);
* the guard answers ``{"pid", "stage_pid"}``, then, when the stage ended,
  ``{"returncode", "cpu_s"}`` (user + system seconds of the stage and of
  the processes it waited for) and exits.

As :mod:`~mmcast.apis.pipeline.stage_guard` does for a fresh process, the
guard stops the stage's group (SIGTERM, then SIGKILL after
:data:`~mmcast.apis.pipeline.stage_guard.GRACE_S` seconds) and answers
``128 + N`` when it gets signal N (SIGTERM, SIGINT, SIGHUP), when the
pipeline closes the connection or is gone, or when the server is gone
(``PR_SET_PDEATHSIG`` and polling). The server ignores SIGINT (Ctrl-C in
a terminal reaches the pipeline, which stops the stages), ends with the
pipeline (``PR_SET_PDEATHSIG``) and when its standard input closes.
"""
import atexit
import gc
import json
import os
import os.path as osp
import random
import runpy
import select
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Dict, List, Optional, Tuple

from .stage_guard import (GRACE_S, POLL_S, exit_status, kill_group,
                          signal_on_parent_death)

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_WARMED: set = set()  # the configs read here once


def preload() -> None:
    """Import what a stage process of MMDetection's scripts imports: torch,
    MMEngine's runner, MMDetection's registered modules and mmcast (the
    configs' ``custom_imports``), with scoped base configs remembered
    (:mod:`mmcast.utils.external_config_index`)."""
    import mmengine.runner  # noqa: F401
    import torch  # noqa: F401
    from mmdet import (datasets, engine, evaluation, models,  # noqa: F401
                       visualization)

    import mmcast  # noqa: F401
    from mmcast.utils.external_config_index import \
        cache_external_config_index
    cache_external_config_index()


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pipeline_pid, listen_fd = int(argv[0]), int(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal_on_parent_death(signal.SIGTERM)
    if os.getppid() != pipeline_pid:  # gone before the request took hold
        return 0
    listener = socket.socket(fileno=listen_fd)
    env = _started_with()
    preload()
    gc.collect()
    gc.freeze()  # the children's collections skip the imported heap
    while os.getppid() == pipeline_pid:
        readable, _, _ = select.select([listener, sys.stdin], [], [], POLL_S)
        _reap()
        if sys.stdin in readable and not os.read(sys.stdin.fileno(), 1):
            break  # the pipeline closed it: done
        if listener in readable:
            conn, _ = listener.accept()
            try:
                _serve(conn, listener, env)
            except Exception:  # a bad request: its client starts anew
                traceback.print_exc()
    return 0


def _started_with() -> Dict[str, str]:
    """The environment this process started with (the imports may have
    changed ``os.environ`` since)."""
    with open('/proc/self/environ', 'rb') as f:
        pairs = [item.split(b'=', 1) for item in f.read().split(b'\0')
                 if b'=' in item]
    return {os.fsdecode(k): os.fsdecode(v) for k, v in pairs}


def _reap() -> None:
    """Collect the guards that ended."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _serve(conn: socket.socket, listener: socket.socket,
           env: Dict[str, str]) -> None:
    """Read one request from ``conn``; fork its guard, or refuse it."""
    with conn:
        conn.settimeout(30)
        try:
            request = json.loads(conn.makefile('rb').readline())
        except (OSError, ValueError):
            return  # the client gave up: nothing started
        refusal = _refusal(request, env)
        if refusal is None and threading.active_count() != 1:
            refusal = 'the fork server runs threads'
        if refusal is not None:
            _send(conn, refused=refusal)
            return
        _warm(request['argv'])
        server_pid = os.getpid()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        try:
            guard_pid = os.fork()
        except OSError as e:  # no memory, too many processes
            _send(conn, refused=f'the fork server cannot fork: {e}')
            return
        if guard_pid == 0:
            listener.close()
            _only_in_child(lambda: _guard(conn, request, server_pid))


def _only_in_child(run) -> None:
    """Run a forked child's part, which ends with ``os._exit``; whatever
    it raises ends the child too (exit 1), never the parent's code."""
    try:
        run()
    except BaseException:  # noqa: B902
        traceback.print_exc()
    finally:
        os._exit(1)


def _refusal(request: dict, env: Dict[str, str]) -> Optional[str]:
    """Why a request cannot be forked here (``None``: it can)."""
    if request.get('env') != env:
        changed = sorted(k for k in set(env) | set(request.get('env') or {})
                         if env.get(k) != (request.get('env') or {}).get(k))
        return ('its environment is not the fork server\'s (' +
                ', '.join(changed[:5]) + ')')
    return None


def _warm(argv: List[str]) -> None:
    """Read the stage's config once here, so that every stage forked later
    finds its scoped base configs remembered; a config that fails to load
    fails in the stage, with its own message."""
    from mmengine.config import Config
    config = argv[1] if len(argv) > 1 else None
    if config is None or config in _WARMED:
        return
    _WARMED.add(config)
    try:
        Config.fromfile(config)
    except Exception:
        pass


def _send(conn: socket.socket, **message) -> None:
    try:
        conn.sendall(json.dumps(message).encode() + b'\n')
    except OSError:  # the pipeline is gone: the guard notices it too
        pass


# ------------------------------------------------------------- the guard
def _guard(conn: socket.socket, request: dict, server_pid: int) -> None:
    """The forked guard of one stage: start it, watch it, answer."""
    conn.setblocking(True)
    stop_requested: List[int] = []
    for signum in _STOP_SIGNALS:
        signal.signal(signum, lambda signum, frame: stop_requested.append(
            signum))
    signal_on_parent_death(signal.SIGTERM)
    if os.getppid() != server_pid:
        os._exit(0)
    stage_pid = os.fork()
    if stage_pid == 0:
        conn.close()
        _only_in_child(lambda: _stage(request))
    try:
        os.setpgid(stage_pid, stage_pid)
    except OSError:  # the stage did it first
        pass
    _send(conn, pid=os.getpid(), stage_pid=stage_pid)
    returncode, cpu_s = _watch(conn, stage_pid, stop_requested, server_pid)
    _send(conn, returncode=returncode, cpu_s=cpu_s)
    os._exit(0)


def _watch(conn: socket.socket, stage_pid: int, stop_requested: List[int],
           server_pid: int) -> Tuple[int, float]:
    """Wait for the stage → (exit status, processor seconds); stop it when
    asked to or when the pipeline or the server is gone."""
    while True:
        pid, status, usage = os.wait4(stage_pid, os.WNOHANG)
        if pid == stage_pid:
            return (exit_status(os.waitstatus_to_exitcode(status)),
                    usage.ru_utime + usage.ru_stime)
        gone = os.getppid() != server_pid or _closed(conn)
        if stop_requested or gone:
            cpu_s = _stop(stage_pid)
            return 128 + (stop_requested or [signal.SIGTERM])[0], cpu_s
        select.select([conn], [], [], POLL_S)


def _closed(conn: socket.socket) -> bool:
    """Whether the pipeline closed its end (it never sends more)."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b''
    except BlockingIOError:
        return False
    except OSError:
        return True


def _stop(stage_pid: int) -> float:
    """SIGTERM to the stage's group, SIGKILL to what remains of it after
    ``GRACE_S`` seconds → the stage's processor seconds."""
    kill_group(stage_pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        pid, _, usage = os.wait4(stage_pid, os.WNOHANG)
        if pid == stage_pid:
            kill_group(stage_pid, signal.SIGKILL)  # its other members
            return usage.ru_utime + usage.ru_stime
        select.select([], [], [], 0.05)
    kill_group(stage_pid, signal.SIGKILL)
    _, _, usage = os.wait4(stage_pid, 0)
    return usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------- the stage
def _stage(request: dict) -> None:
    """The forked stage: become the process ``python argv...`` would be,
    run the script, exit as it would."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    log = os.open(request['log'], os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                  0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    _set_title(request['title'])
    _fresh_random_state()
    script = request['argv'][0]
    sys.argv = list(request['argv'])
    sys.path[0] = osp.dirname(osp.abspath(script))
    code, interrupted = 0, False
    try:
        runpy.run_path(script, run_name='__main__')
    except SystemExit as e:
        code = _exit_code(e)
    except BaseException as e:  # noqa: B902 - as Python's top level
        _print_from_script(e, script)
        code, interrupted = 1, isinstance(e, KeyboardInterrupt)
    _finish()
    if interrupted:  # as Python itself ends on an uncaught Ctrl-C
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


def _set_title(title: str) -> None:
    """The process's command line as ``ps`` shows it."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(title)


def _fresh_random_state() -> None:
    """Python's and NumPy's generators seeded from the system as in a new
    process, torch's at its default seed."""
    import numpy as np
    import torch
    random.seed()
    np.random.seed()
    torch.default_generator.set_state(torch.Generator().get_state())


def _exit_code(exit: SystemExit) -> int:
    """The exit status Python gives ``sys.exit(code)``."""
    if exit.code is None:
        return 0
    if isinstance(exit.code, int):
        return exit.code
    print(exit.code, file=sys.stderr)
    return 1


def _print_from_script(error: BaseException, script: str) -> None:
    """The traceback Python prints, from the script's frame on (not the
    fork server's)."""
    tb = error.__traceback__
    path = osp.realpath(script)
    while tb is not None and \
            osp.realpath(tb.tb_frame.f_code.co_filename) != path:
        tb = tb.tb_next
    if tb is not None:
        error = error.with_traceback(tb)
    sys.excepthook(type(error), error, error.__traceback__)


def _finish() -> None:
    """What Python does at exit: wait for the non-daemon threads, run the
    exit handlers (logging's among them), flush the standard streams."""
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


if __name__ == '__main__':
    sys.exit(main())
