# Copyright (c) mmcast contributors. All rights reserved.
"""What a finished stage was made from, and whether it still is.

A stage's completion record (``stage_complete.json``, written last) holds,
beside its final checkpoint, its provenance: the sha256 of its resolved
config, the sha256 of every file it read that a run makes or a user edits
(the checkpoints of its hand-offs and initialisation, the annotation and
split files of its training data), the mmcast version and git commit, its
seed and threads, the device it trained on and the iteration it was resumed
from, if any (on a CPU a resumed stage ends bit for bit as one never
stopped: :class:`~mmcast.engine.hooks.RandomStateHook`; on a GPU, whose
kernels are not all deterministic, it does not).

The rule for a finished stage whose inputs changed since (an upstream stage
redone, a split drawn again, an annotation file edited, another mmcast
version) is the one a make-like tool follows: the stage is trained again,
and so, one after the other, is every stage made from it; one line names
the stage and what changed. Paths into the run's work dir are kept
relative to it, and paths into the checkout (its ``data/``) relative to the
checkout, so a work dir or a checkout that is moved or copied, or a second
clone driving the same work dir, keeps its stages while the files hold the
same bytes.
"""
import functools
import hashlib
import json
import os.path as osp
import subprocess
from typing import Dict, List, Optional

import torch

from mmcast.utils.file_hashing import file_sha256
from mmcast.version import __version__
from .config_inputs import dataset_inputs
from .settings import REPO_ROOT
from .stage import Stage

# how a path into the run's work dir is recorded
WORK_DIR_MARK = '<work_dir>'
# how a path into the checkout the stages run from is recorded
REPO_MARK = '<repo>'
# overrides whose values are checkpoints a stage reads
CHECKPOINT_KEY_ENDS = ('checkpoint', 'load_from')


@functools.lru_cache(maxsize=None)
def git_commit(root: str = REPO_ROOT) -> Optional[str]:
    """The commit of the checkout the stages run from (``None`` outside a
    git checkout, or without git)."""
    if not osp.isdir(osp.join(root, '.git')) and \
            not osp.isfile(osp.join(root, '.git')):
        return None
    try:
        out = subprocess.run(['git', '-C', root, 'rev-parse', 'HEAD'],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def input_files(stage: Stage, cfg) -> List[str]:
    """The files ``stage`` (its config ``cfg``, overrides merged) reads that
    a run makes or a user edits: the checkpoints its overrides hand it and
    the annotation files of its training data (its own pseudo-labels
    excepted: it writes them). Absolute paths of the files that exist."""
    found = []
    for key, value in stage.overrides:
        if key.endswith(CHECKPOINT_KEY_ENDS):
            found += value if isinstance(value, list) else [value]
    hooks = [h.get('unlabeled_dataset') for h in cfg.get('custom_hooks') or []]
    found += [ann for ann, _ in dataset_inputs(
        [cfg.get('train_dataloader'), hooks])]
    paths = []
    for path in found:
        if not isinstance(path, str) or '://' in path:
            continue
        path = osp.normpath(osp.join(REPO_ROOT, path))
        if osp.isfile(path) and path != stage.pseudo_label_file and \
                path not in paths:
            paths.append(path)
    return paths


def _recorded(path: str, work_dir: str) -> str:
    """``path`` as a completion record keeps it: under the work dir's or
    the checkout's mark (the work dir first: it may lie in the checkout),
    else absolute."""
    for root, mark in ((work_dir, WORK_DIR_MARK), (REPO_ROOT, REPO_MARK)):
        rel = osp.relpath(path, root)
        if not rel.startswith('..'):
            return osp.join(mark, rel)
    return path


def _resolved(path: str, work_dir: str) -> str:
    for root, mark in ((work_dir, WORK_DIR_MARK), (REPO_ROOT, REPO_MARK)):
        if path.startswith(mark + osp.sep):
            return osp.join(root, path[len(mark) + 1:])
    return path


def provenance(stage: Stage, cfg, work_dir: str, env: Dict[str, str],
               resumed_from: Optional[int]) -> dict:
    """The provenance of ``stage`` trained with ``cfg`` in the run of
    ``work_dir``, for its completion record."""
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return dict(
        config_sha256=hashlib.sha256(
            text.replace(work_dir, WORK_DIR_MARK).encode()).hexdigest(),
        inputs={_recorded(p, work_dir): file_sha256(p)
                for p in input_files(stage, cfg)},
        mmcast_version=__version__, git_commit=git_commit(),
        seed=stage.seed, threads=env.get('OMP_NUM_THREADS'),
        device=training_device(env), resumed_from=resumed_from)


def training_device(env: Dict[str, str]) -> str:
    """'cuda' where a stage launched with ``env`` trains on a GPU (MMEngine
    takes one when it sees one), else 'cpu'."""
    hidden = env.get('CUDA_VISIBLE_DEVICES', None) in ('', '-1')
    return 'cuda' if torch.cuda.is_available() and not hidden else 'cpu'


def changed_inputs(record: Optional[dict], work_dir: str) -> List[str]:
    """What changed since the stage of ``record`` (its completion record)
    trained: one phrase per input; none for a record without provenance
    (written before records had it)."""
    if not record or 'inputs' not in record:
        return []
    changed = []
    version = record.get('mmcast_version')
    if version is not None and version != __version__:
        changed.append(f'it was trained by mmcast {version}, this is '
                       f'{__version__}')
    for recorded, sha in record['inputs'].items():
        path = _resolved(recorded, work_dir)
        if not osp.isfile(path):
            changed.append(f'{recorded} is gone')
        elif file_sha256(path) != sha:
            changed.append(f'{recorded} changed since it trained')
    return changed
