# Copyright (c) mmcast contributors. All rights reserved.
"""What an MMEngine run logged in its work dir: the last metrics and the
training steps' speed (``<timestamp>/vis_data/scalars.json``, the file of
``mim train``; ``<timestamp>/<timestamp>.json`` of ``mim test``)."""
import json
import os
import os.path as osp
from statistics import median
from typing import Dict, List, Optional


def scalar_records(work_dir: str) -> List[dict]:
    """The records of the newest run's scalars file (``[]`` if none)."""
    runs = sorted(d for d in os.listdir(work_dir)
                  if osp.isdir(osp.join(work_dir, d)))
    for run in reversed(runs):
        for path in (osp.join(work_dir, run, 'vis_data', 'scalars.json'),
                     osp.join(work_dir, run, f'{run}.json')):
            if osp.isfile(path):
                with open(path, encoding='utf-8') as f:
                    return [json.loads(line) for line in f if line.strip()]
    return []


def val_record(work_dir: str) -> Dict[str, float]:
    """The last metrics a run logged (``{}`` if none): the last record
    with a ``prefix/metric`` key."""
    val = [r for r in scalar_records(work_dir) if any('/' in k for k in r)]
    return val[-1] if val else {}


def train_speed(work_dir: str,
                images_per_step: int) -> Dict[str, Optional[float]]:
    """The speed of a run's training steps, from MMEngine's train records
    (logged every iteration with ``log_processor.window_size=1``, so that
    each record holds its own iteration's values, not a moving mean).

    The first step (CUDA context, cuDNN's autotuning, allocator growth) is
    left out when there are more.

    Args:
        work_dir (str): The run's work dir.
        images_per_step (int): Images of one training batch.

    Returns:
        dict: ``step_seconds`` and ``data_seconds`` (median over the
        steps; ``time`` and ``data_time`` of the log), ``images_per_second``
        (``images_per_step / step_seconds``) and ``peak_memory_mb``: the
        largest ``memory`` of the records, MMEngine's
        ``torch.cuda.max_memory_allocated`` of each step in MB; None on CPU
        (MMEngine logs it on CUDA only). All None when no step was logged.
    """
    steps = [r for r in scalar_records(work_dir)
             if {'time', 'data_time', 'loss'} <= set(r)]
    if not steps:
        return dict.fromkeys(('step_seconds', 'data_seconds',
                              'images_per_second', 'peak_memory_mb'))
    timed = steps[1:] or steps
    step = median(r['time'] for r in timed)
    memory = [r['memory'] for r in steps if 'memory' in r]
    return dict(
        step_seconds=round(step, 4),
        data_seconds=round(median(r['data_time'] for r in timed), 4),
        images_per_second=round(images_per_step / step, 3),
        peak_memory_mb=max(memory) if memory else None)
