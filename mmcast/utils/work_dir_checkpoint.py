# Copyright (c) mmcast contributors. All rights reserved.
"""``work-dir://<work dir>``: the checkpoint a finished training run left in
its work dir, wherever a checkpoint path is taken.

The stage configs hand over to the next stage by the previous stage's work
dir, not by a literal ``iter_<N>.pth``, so that a stage trained for another
number of iterations (``--cfg-options train_cfg.max_iters=...``) still hands
over::

    teacher_checkpoint = 'work-dir://work_dirs/cast-adapt-teacher_...'
    init_cfg = dict(type='Pretrained', checkpoint='work-dir://work_dirs/...')

The name is registered as a scheme of MMEngine's ``CheckpointLoader``
(:func:`~mmcast.utils.checkpoint_loading.load_from_work_dir`: so
``load_from``, ``init_cfg`` and ``--checkpoint`` take it) and read by
mmcast's own loaders (:func:`~mmcast.utils.checkpoint_loading.
load_checkpoint_file`, the teachers, the preflight, the pseudo-labels'
record of their teacher). The checkpoint is, in this order:

1. the one the work dir's completion record names (``stage_complete.json``,
   written by ``tools/cast_pipeline.py`` when a stage completed);
2. the one MMEngine's ``last_checkpoint`` names, when the run got to its end:
   its iteration is the ``train_cfg.max_iters`` of the config MMEngine
   dumped there. A run that stopped before is refused (resume it, or name
   the checkpoint file to take it as it is).
"""
import glob
import os.path as osp
import re
from typing import Optional

WORK_DIR_SCHEME = 'work-dir://'
_ITERATION = re.compile(r'iter_(\d+)\.pth$')


def finished_checkpoint(work_dir: str) -> str:
    """The checkpoint the finished run of ``work_dir`` left.

    Raises:
        FileNotFoundError: Naming the work dir: it does not exist, holds no
            checkpoint, or its run stopped before its last iteration.
    """
    from .stage_state import last_checkpoint, read_completion

    name = WORK_DIR_SCHEME + work_dir
    if not osp.isdir(work_dir):
        raise FileNotFoundError(
            f'{name}: no such work dir: train the stage that writes it first '
            '(or name a checkpoint file)')
    record = read_completion(work_dir) or {}
    if record.get('checkpoint'):
        path = osp.join(work_dir, osp.basename(record['checkpoint']))
        if osp.isfile(path):
            return path
    last = last_checkpoint(work_dir)
    if last is None:
        raise FileNotFoundError(
            f'{name}: no checkpoint there (no last_checkpoint): train the '
            'stage that writes it first')
    done, total = _iteration(last), dumped_max_iters(work_dir)
    if done is not None and total is not None and done < total:
        raise FileNotFoundError(
            f'{name}: its run stopped at iteration {done} of {total} '
            f'({osp.basename(last)}): resume it (--resume) to finish, or '
            f'name {last} to take that checkpoint as it is')
    return last


def resolve_checkpoint(path: Optional[str]) -> Optional[str]:
    """``path`` itself, or for ``work-dir://<dir>`` the checkpoint it
    stands for (:func:`finished_checkpoint`)."""
    if path is not None and path.startswith(WORK_DIR_SCHEME):
        return finished_checkpoint(path[len(WORK_DIR_SCHEME):])
    return path


def dumped_max_iters(work_dir: str) -> Optional[int]:
    """``train_cfg.max_iters`` of the newest config MMEngine dumped into
    ``work_dir`` (``<work_dir>/<config name>.py``), or ``None``."""
    from mmengine.config import Config

    for path in sorted(glob.glob(osp.join(work_dir, '*.py')),
                       key=osp.getmtime, reverse=True):
        try:
            iters = Config.fromfile(path).get('train_cfg', {}).get(
                'max_iters')
        except Exception:  # noqa: BLE001 - not a config (or cut short)
            continue
        if isinstance(iters, int):
            return iters
    return None


def _iteration(checkpoint: str) -> Optional[int]:
    found = _ITERATION.search(osp.basename(checkpoint))
    return int(found.group(1)) if found else None
