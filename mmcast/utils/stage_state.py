# Copyright (c) mmcast contributors. All rights reserved.
"""Whether a training stage of the pipeline finished, crashed or is new.

A stage is *finished* only when it completed: its run exited cleanly, its
final checkpoint is MMEngine's ``last_checkpoint`` and its validation
metrics were logged. The pipeline then writes :data:`COMPLETION_FILE` into
the stage's work dir, last and atomically; a crash can leave checkpoints
behind (e.g. ``iter_1.pth`` of a one-iteration run that died in its
evaluation), never that record. Work dirs of earlier versions have no record:
they count as finished when the final checkpoint is the last one and their
metrics were logged.
"""
import datetime
import glob
import json
import os
import os.path as osp
import re
from typing import Dict, List, Optional

from mmcast.utils.atomic_io import atomic_dump_json

COMPLETION_FILE = 'stage_complete.json'
# The folder of a finished run's evaluation when its own one did not happen.
FINAL_EVAL = 'final_eval'
# What MMDetection's CocoMetric logs for the mask AP.
SEGM_AP_KEY = 'coco/segm_mAP'
# What it logs (and no metric) when nothing at all was predicted.
EMPTY_RESULTS = 'The testing results of the whole dataset is empty'

FINISHED, CRASHED, NEW = 'finished', 'crashed', 'new'
_ITER_FILE = re.compile(r'iter_(\d+)\.pth')


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint MMEngine's ``last_checkpoint`` file points to, if it
    exists.

    The record holds an absolute path; a work dir that was copied or moved
    since still names the file in its old place, so the file of that name in
    ``work_dir`` itself is taken when there is one.
    """
    marker = osp.join(work_dir, 'last_checkpoint')
    try:
        with open(marker, encoding='utf-8') as f:
            path = f.read().strip()
    except OSError:
        return None
    if not path:  # an empty record (a full disk under an old MMEngine)
        return None
    own = osp.join(work_dir, osp.basename(path))
    if osp.isfile(own):
        return own
    return path if osp.isfile(path) else None


def iteration_checkpoints(work_dir: str) -> List[str]:
    """The ``iter_<N>.pth`` files of ``work_dir``, newest iteration first."""
    found = []
    for path in glob.glob(osp.join(work_dir, 'iter_*.pth')):
        match = _ITER_FILE.fullmatch(osp.basename(path))
        if match and osp.isfile(path):
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found, reverse=True)]


def set_aside_checkpoint(path: str) -> str:
    """Rename a damaged checkpoint to ``<path>.damaged`` (nothing is
    deleted), out of the way of a resume. Returns the new path."""
    target, n = path + '.damaged', 1
    while osp.lexists(target):
        n += 1
        target = f'{path}.damaged-{n}'
    os.replace(path, target)
    return target


def json_logs(work_dir: str) -> list:
    """MMEngine's json logs of ``work_dir``, newest first: one per run,
    ``<timestamp>/vis_data/<timestamp>.json`` (training),
    ``<timestamp>/<timestamp>.json`` (``test.py``) or
    ``<FINAL_EVAL>/<timestamp>/<timestamp>.json`` (the evaluation of a run
    that stopped after its last checkpoint)."""
    paths = glob.glob(osp.join(work_dir, '*', 'vis_data', '*.json')) + \
        glob.glob(osp.join(work_dir, '*', '*.json')) + \
        glob.glob(osp.join(work_dir, FINAL_EVAL, '*', '*.json'))
    paths = [p for p in paths if osp.basename(p) != 'scalars.json']
    return sorted(paths, key=osp.getmtime, reverse=True)


def logged_metrics(work_dir: str) -> Optional[Dict[str, float]]:
    """The last validation (or test) record with a mask AP logged in
    ``work_dir``; ``{}`` when a run logged that it predicted nothing at all
    (its AP is 0); ``None`` when none was logged."""
    for path in json_logs(work_dir):
        with open(path, encoding='utf-8', errors='replace') as f:
            records = [ln for ln in f if ln.strip().startswith('{')]
        for line in reversed(records):
            try:
                record = json.loads(line)
            except ValueError:  # a line cut short by a crash
                continue
            if SEGM_AP_KEY in record:
                return record
        run_dir = osp.dirname(path)
        if osp.basename(run_dir) == 'vis_data':
            run_dir = osp.dirname(run_dir)
        run = osp.basename(run_dir)
        text_log = osp.join(run_dir, f'{run}.log')
        if osp.isfile(text_log):
            with open(text_log, encoding='utf-8', errors='replace') as f:
                if EMPTY_RESULTS in f.read():
                    return {}
    return None


def logged_contrast_monitors(work_dir: str) -> Dict[str, float]:
    """What the paper monitors of L_pxl over a stage's training, from its
    json logs (every run of a resumed stage, the later one's record of an
    iteration kept): ``pxl_fnr``, the mean false-negative rate of the drawn
    negatives after the first quarter of the iterations (the warm-up), and
    ``pxl_margin_first`` / ``pxl_margin_last``, the mean margin Δ over the
    first and the last quarter. ``{}`` for a stage that logged none."""
    by_iter = {}
    for path in reversed(json_logs(work_dir)):  # oldest first
        with open(path, encoding='utf-8', errors='replace') as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and 'pxl_margin' in record \
                        and 'iter' in record:
                    by_iter[record['iter']] = record
    if not by_iter:
        return {}
    records = [by_iter[i] for i in sorted(by_iter)]
    quarter = max(len(records) // 4, 1)

    def mean(key: str, part: list) -> Optional[float]:
        values = [r[key] for r in part if key in r]
        return round(sum(values) / len(values), 3) if values else None

    found = dict(pxl_fnr=mean('pxl_fnr', records[quarter:] or records),
                 pxl_margin_first=mean('pxl_margin', records[:quarter]),
                 pxl_margin_last=mean('pxl_margin', records[-quarter:]))
    return {k: v for k, v in found.items() if v is not None}


def read_completion(work_dir: str) -> Optional[dict]:
    """The completion record of ``work_dir``, or ``None``."""
    path = osp.join(work_dir, COMPLETION_FILE)
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            record = json.load(f)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def write_completion(work_dir: str, checkpoint: str, max_iters: int,
                     provenance: Optional[dict] = None) -> None:
    """Record that the stage of ``work_dir`` completed with ``checkpoint``,
    and what it was made from (``provenance``, see
    :mod:`mmcast.apis.pipeline.provenance`); written atomically, call it
    last."""
    atomic_dump_json(
        dict(provenance or {}, checkpoint=osp.basename(checkpoint),
             max_iters=max_iters,
             completed=datetime.datetime.now().isoformat(
                 timespec='microseconds')),
        osp.join(work_dir, COMPLETION_FILE), indent=2)


def stage_status(work_dir: str, max_iters: int) -> str:
    """:data:`FINISHED`, :data:`CRASHED` (a run left checkpoints but did not
    complete) or :data:`NEW` (nothing to resume) for a stage of
    ``max_iters`` iterations in ``work_dir`` (also through a link)."""
    final = osp.join(work_dir, f'iter_{max_iters}.pth')
    last = last_checkpoint(work_dir)
    at_final = last is not None and osp.realpath(last) == osp.realpath(final)
    record = read_completion(work_dir)
    if record is not None and at_final and \
            record.get('checkpoint') == osp.basename(final):
        return FINISHED
    if record is None and at_final and logged_metrics(work_dir) is not None:
        return FINISHED  # completed before completion records existed
    return CRASHED if last is not None or iteration_checkpoints(work_dir) \
        else NEW


def set_aside(work_dir: str) -> str:
    """Move a crashed stage's work dir out of the way (nothing is deleted):
    ``<work_dir>.crashed-<time>``. Returns the new path."""
    stamp = datetime.datetime.now().strftime('%Y%m%d_%H%M%S')
    target = f'{work_dir}.crashed-{stamp}'
    n = 1
    while osp.lexists(target):
        n += 1
        target = f'{work_dir}.crashed-{stamp}-{n}'
    os.replace(work_dir, target)
    return target
