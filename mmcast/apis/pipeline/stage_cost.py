# Copyright (c) mmcast contributors. All rights reserved.
"""What a stage cost: the processor seconds (user + system) and the wall
seconds of its processes, pseudo-labelling and evaluation included.

Each process the pipeline starts for a stage (training, a resumed training,
a final evaluation, a test) adds its cost to ``<stage work dir>/
stage_cost.json`` when it ends, whatever its exit status: a resumed stage
sums its runs, a stage set aside and trained again starts from nothing (its
folder moved with its costs). The processor time is the whole process tree's
(the guard, ``mim``, MMDetection's script, ``torchrun``'s workers on this
node), as the kernel reports it when the guard is reaped (a stage forked by
the fork server, :mod:`~mmcast.apis.pipeline.stage_forkserver`: the stage's
process and what it waited for, as its guard reaps it; the imports the
server made once for every stage are no stage's): of a run stopped
with the pipeline (Ctrl-C, SIGTERM) only what its reaped processes used
counts. While a run goes on, :class:`CostWatch` keeps the seconds of its
live process tree so far in the same file (``unfinished``, read from
Linux's ``/proc`` every :data:`SNAPSHOT_S` seconds): of a pipeline killed
outright (SIGKILL, the machine lost) the last such reading counts, and the
next run of the stage adds it to the stage's before it starts. A cost
that cannot be written (a full disk) is left out rather than hiding the
stage's own outcome. The results row of a stage carries both as ``cpu_s``
and ``wall_s`` (:mod:`mmcast.evaluation.results_table` sums them per
seed).
"""
import contextlib
import json
import os
import os.path as osp
import subprocess
import threading
import time
from typing import Dict, Optional, Tuple

from mmcast.utils.atomic_io import atomic_dump_json

COST_FILE = 'stage_cost.json'
COST_KEYS = ('cpu_s', 'wall_s')
UNFINISHED = 'unfinished'  # the running (or killed) run's seconds so far
SNAPSHOT_S = 15.0  # seconds between two readings of a running stage


def wait_with_cpu_time(proc: subprocess.Popen) -> Tuple[int, float]:
    """Wait for ``proc`` → its exit status and the user + system seconds of
    it and of every process it waited for (its children, theirs, ...);
    0 seconds when another waiter reaped it first (the pipeline stopping
    its stages)."""
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        return proc.wait(), 0.0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def tree_cpu_seconds(pid: int) -> Optional[float]:
    """User + system seconds so far of process ``pid``, of its live
    descendants and of the children each of them waited for (Linux's
    ``/proc``) → ``None`` where there is no ``/proc`` or ``pid`` ended."""
    children: Dict[int, list] = {}
    ticks: Dict[int, int] = {}
    try:
        entries = [e for e in os.listdir('/proc') if e.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            with open(f'/proc/{entry}/stat', 'rb') as f:
                # after the command's name: state, ppid, ... utime (the
                # 14th field), stime, cutime, cstime (the 17th)
                fields = f.read().rsplit(b')', 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry))
        ticks[int(entry)] = sum(int(v) for v in fields[11:15])
    if pid not in ticks:
        return None
    total, todo = 0, [pid]
    while todo:
        process = todo.pop()
        total += ticks.get(process, 0)
        todo.extend(children.get(process, ()))
    return total / os.sysconf('SC_CLK_TCK')


def _read_file(work_dir: str) -> Dict:
    path = osp.join(work_dir, COST_FILE)
    if not osp.isfile(path):
        return {}
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def read_cost(work_dir: str) -> Dict[str, float]:
    """``dict(cpu_s, wall_s)`` spent on the stage in ``work_dir`` so far,
    a run's ``unfinished`` seconds included (``{}``: nothing recorded, e.g.
    a stage finished before costs were kept)."""
    cost = _read_file(work_dir)
    if not cost:
        return {}
    unfinished = cost.get(UNFINISHED, {})
    return {key: round(float(cost.get(key, 0.0)) +
                       float(unfinished.get(key, 0.0)), 1)
            for key in COST_KEYS}


def _write(work_dir: str, cpu_s: float, wall_s: float,
           unfinished: Optional[Dict[str, float]] = None) -> None:
    cost = dict(cpu_s=cpu_s, wall_s=wall_s)
    if unfinished is not None:
        cost[UNFINISHED] = unfinished
    atomic_dump_json(cost, osp.join(work_dir, COST_FILE), indent=2)


def add_cost(work_dir: str, cpu_s: float, wall_s: float) -> Dict[str, float]:
    """Add one ended process's seconds to the stage's cost file (written
    whole or not at all), in place of its ``unfinished`` reading → the
    stage's cost so far."""
    cost = _read_file(work_dir)
    _write(work_dir, float(cost.get('cpu_s', 0.0)) + cpu_s,
           float(cost.get('wall_s', 0.0)) + wall_s)
    return read_cost(work_dir)


class CostWatch:
    """Keeps the seconds of a stage's running process tree in its cost file
    (``unfinished``) every ``interval`` seconds, from :meth:`start` to
    :meth:`stop`; :meth:`start` first adds what a run killed outright left
    there to the stage's seconds.

    Args:
        work_dir (str): The stage's work dir.
        interval (float): Seconds between two readings. Defaults to
            :data:`SNAPSHOT_S`.
    """

    def __init__(self, work_dir: str, interval: Optional[float] = None
                 ) -> None:
        self.work_dir = work_dir
        self.interval = SNAPSHOT_S if interval is None else interval
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self, pid: int) -> None:
        """Follow the process tree of ``pid``, started now."""
        cost = _read_file(self.work_dir)
        if UNFINISHED in cost:  # a run killed with its pipeline
            with contextlib.suppress(OSError):  # a full disk: left as it is
                _write(self.work_dir, *(cost[key] + cost[UNFINISHED][key]
                                        for key in COST_KEYS))
        started = time.monotonic()
        self._thread = threading.Thread(
            target=self._loop, args=(pid, started), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading (before the ended run's own seconds are added)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self, pid: int, started: float) -> None:
        while not self._stop.wait(self.interval):
            cpu_s = tree_cpu_seconds(pid)
            if cpu_s is None:
                return
            cost = _read_file(self.work_dir)
            try:
                _write(self.work_dir, float(cost.get('cpu_s', 0.0)),
                       float(cost.get('wall_s', 0.0)),
                       dict(cpu_s=cpu_s, wall_s=time.monotonic() - started))
            except OSError:  # a full disk: the stage goes on without it
                pass
