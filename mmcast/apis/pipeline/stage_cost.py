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
counts, of a pipeline killed outright nothing, and a cost that cannot be
written (a full disk) is left out rather than hiding the stage's own
outcome. The results row of a stage carries both as ``cpu_s`` and
``wall_s`` (:mod:`mmcast.evaluation.results_table` sums them per seed).
"""
import json
import os
import os.path as osp
import subprocess
from typing import Dict, Tuple

from mmcast.utils.atomic_io import atomic_dump_json

COST_FILE = 'stage_cost.json'
COST_KEYS = ('cpu_s', 'wall_s')


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


def read_cost(work_dir: str) -> Dict[str, float]:
    """``dict(cpu_s, wall_s)`` spent on the stage in ``work_dir`` so far
    (``{}``: nothing recorded, e.g. a stage finished before costs were
    kept)."""
    path = osp.join(work_dir, COST_FILE)
    if not osp.isfile(path):
        return {}
    with open(path, encoding='utf-8') as f:
        cost = json.load(f)
    return {key: round(float(cost[key]), 1) for key in COST_KEYS}


def add_cost(work_dir: str, cpu_s: float, wall_s: float) -> Dict[str, float]:
    """Add one process's seconds to the stage's cost file (written whole
    or not at all) → the stage's cost so far."""
    cost = read_cost(work_dir) or dict.fromkeys(COST_KEYS, 0.0)
    cost = dict(cpu_s=cost['cpu_s'] + cpu_s, wall_s=cost['wall_s'] + wall_s)
    atomic_dump_json(cost, osp.join(work_dir, COST_FILE), indent=2)
    return read_cost(work_dir)
