# Copyright (c) mmcast contributors. All rights reserved.
"""Whether a CPU run's stages would oversubscribe CPUs already busy."""
import os
import time
from typing import Optional, Tuple

from .run_spec import RunSpec


def cpu_contention_note(busy: float, cpus: int, jobs: int,
                        omp_threads: Optional[str]) -> Optional[str]:
    """A note when the stages' threads and the CPUs other programs keep busy
    (e.g. a second pipeline) exceed the CPUs, else ``None``.

    Oversubscribed PyTorch (OpenMP) threads wait on each other far more
    than their share of the CPUs explains, so the note names the
    ``OMP_NUM_THREADS`` that fits the CPUs left; with one thread per stage
    already, the CPUs are only shared, and there is no note.

    Args:
        busy (float): CPUs kept busy by other programs (see
            :func:`busy_cpus`).
        cpus (int): The CPUs of the machine.
        jobs (int): Training processes run at once (``--jobs`` × ``--nproc``).
        omp_threads (str, optional): The stages' ``OMP_NUM_THREADS``;
            ``None``: PyTorch's default, one thread per CPU; a value
            OpenMP cannot read gives no note.

    Returns:
        str, optional: The note, or ``None`` when the threads fit or are
        one per stage.
    """
    try:  # (OpenMP also reads a list, '4,2': its first level counts)
        threads = int(omp_threads.split(',')[0]) if omp_threads else cpus
    except ValueError:
        return None  # OpenMP's own default then; no advice to give
    others = round(busy)
    fits = max(1, (cpus - others) // jobs)
    if others < 1 or threads <= fits:
        return None  # (one thread each: the CPUs are shared, not thrashed)
    return (f'{busy:.1f} of the {cpus} CPUs are busy with other programs '
            f'(e.g. another training run): {jobs} stage(s) × {threads} '
            'thread(s) would oversubscribe them, which slows PyTorch on a '
            'CPU far more than the share lost; run with '
            f'OMP_NUM_THREADS={fits} (and give the other run its share)')


def busy_cpus(interval: float = 0.25) -> Optional[float]:
    """The CPUs kept busy over ``interval`` seconds while this process
    sleeps, from Linux's ``/proc/stat``; ``None`` where it cannot be read."""

    def sample() -> Tuple[int, int]:
        with open('/proc/stat', encoding='ascii') as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
        return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # - idle, iowait

    try:
        busy0, total0 = sample()
        time.sleep(interval)
        busy1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return 0.0
    return (busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1)


def run_contention_note(spec: RunSpec) -> Optional[str]:
    """On a machine without CUDA, a note when the stages' threads of the run
    ``spec`` would oversubscribe CPUs other programs keep busy
    (:func:`cpu_contention_note`)."""
    import torch

    launch = spec.launch
    if torch.cuda.is_available() or launch.launcher == 'slurm':
        return None
    busy = busy_cpus()
    # torchrun gives each process one thread unless told otherwise
    threads = spec.env.get('OMP_NUM_THREADS') or (
        '1' if launch.launcher == 'pytorch' else None)
    return None if busy is None else cpu_contention_note(
        busy, os.cpu_count() or 1, spec.jobs * launch.nproc, threads)
