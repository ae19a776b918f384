# Copyright (c) mmcast contributors. All rights reserved.
"""What made a stage: the record a finished stage keeps.

A stage's completion record (``stage_complete.json``, written last; a test
stage's too) holds, beside its final checkpoint, its provenance:

- ``config``: its resolved config (``_base_`` files merged, the run's
  overrides in), flattened to ``{dotted key: value}``, without the keys
  that do not change its result
  (:data:`~mmcast.apis.pipeline.settings.RESULT_NEUTRAL_KEYS`,
  :data:`~mmcast.apis.pipeline.settings.SCRIPT_SET_KEYS`), and its sha256;
- ``inputs``: the sha256 of every file it reads that a run makes or a user
  edits: the checkpoints its config names (hand-offs, ``load_from``,
  ``init_cfg``, teachers), the teacher configs it names (resolved, so an
  edited ``_base_`` of theirs counts), the annotation files of its training
  and val data and of its evaluators;
- ``versions``: of torch, mmcv, mmdet, mmengine and mmcast;
- ``code``: the git commit and the sha256 of mmcast's source files as they
  are now (an uncommitted edit counts), with each file's own hash;
- its seed, threads, the device it trained on, the ``machine`` (the
  processor model, or the GPU's name: its cost and, on a CPU, its
  floating-point results depend on it) and the iteration it was resumed
  from, if any.

Paths into the run's work dir are kept relative to it, and paths into the
checkout (its ``data/``) relative to the checkout, so a work dir or a
checkout that is moved or copied, or a second clone driving the same work
dir, keeps its stages while the files hold the same bytes. What a change to
each field does is :mod:`~mmcast.apis.pipeline.stage_changes`'.
"""
import functools
import glob
import hashlib
import json
import os
import os.path as osp
import platform
import subprocess
from importlib import metadata
from typing import Dict, List, Optional

import torch

from mmcast.utils.file_hashing import file_sha256
from mmcast.utils.work_dir_checkpoint import resolve_checkpoint
from mmcast.version import __version__
from .config_inputs import (checkpoint_inputs, dataset_inputs,
                            evaluator_inputs)
from .config_loader import without_neutral_keys
from .settings import REPO_ROOT
from .stage import Stage

# how a path into the run's work dir is recorded
WORK_DIR_MARK = '<work_dir>'
# how a path into the checkout the stages run from is recorded
REPO_MARK = '<repo>'
# the packages whose versions shape a stage's result
VERSIONED_PACKAGES = ('torch', 'mmcv', 'mmdet', 'mmengine', 'mmcast')
# config keys whose string value is a teacher's config file
TEACHER_CONFIG_KEYS = ('teacher', 'teacher_config')
PACKAGE_DIR = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


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


def code_identity(package_dir: Optional[str] = None) -> dict:
    """mmcast's code as the stages import it now: ``git_commit``,
    ``source_sha256`` (of every ``.py`` file of the package, by relative
    path) and ``files`` (``{relative path: sha256[:16]}``) of the package
    in ``package_dir`` (default: the one imported). Read anew at
    each call: a file edited while a pipeline runs counts for the stages
    that start after the edit."""
    package_dir = package_dir or PACKAGE_DIR
    files = {}
    for path in sorted(glob.glob(osp.join(package_dir, '**', '*.py'),
                                 recursive=True)):
        with open(path, 'rb') as f:
            files[osp.relpath(path, osp.dirname(package_dir))] = \
                hashlib.sha256(f.read()).hexdigest()[:16]
    text = json.dumps(files, sort_keys=True).encode()
    return dict(git_commit=git_commit(),
                source_sha256=hashlib.sha256(text).hexdigest(), files=files)


@functools.lru_cache(maxsize=None)
def package_versions() -> Dict[str, Optional[str]]:
    """``{package: version}`` of :data:`VERSIONED_PACKAGES` installed."""
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions['torch'] = torch.__version__
    versions['mmcast'] = __version__
    return versions


def flat_config(cfg, work_dir: str) -> Dict[str, object]:
    """``cfg`` (a stage's merged config) as ``{dotted key: value}``: tuples
    as lists, the work dir and the checkout as their marks, the keys that do
    not change a stage's result left out."""
    tree = without_neutral_keys(
        json.loads(json.dumps(cfg.to_dict(), default=str)))
    flat: Dict[str, object] = {}

    def walk(node, path: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f'{path}.{key}' if path else str(key))
        elif isinstance(node, list) and node and any(
                isinstance(v, (dict, list)) for v in node):
            for i, value in enumerate(node):
                walk(value, f'{path}.{i}')
        else:
            flat[path] = _marked(node, work_dir)

    walk(tree, '')
    return flat


def _marked(value, work_dir: str):
    if isinstance(value, list):
        return [_marked(v, work_dir) for v in value]
    if isinstance(value, str):
        return value.replace(work_dir, WORK_DIR_MARK).replace(
            REPO_ROOT, REPO_MARK)
    return value


def input_files(stage: Stage, cfg) -> List[str]:
    """The files ``stage`` (its config ``cfg``, overrides merged) reads that
    a run makes or a user edits: the checkpoints and teacher configs its
    config names, the annotation files of its datasets (its own
    pseudo-labels excepted: it writes them) and of its evaluators. Absolute
    paths of the files that exist."""
    found = [value for _, value in checkpoint_inputs(
        [cfg.get('model'), cfg.get('custom_hooks')])]
    found += [cfg.get('load_from'), stage.checkpoint]
    found += _teacher_configs([cfg.get('model'), cfg.get('custom_hooks')])
    hooks = [h.get('unlabeled_dataset') for h in cfg.get('custom_hooks') or []]
    found += [ann for ann, _ in dataset_inputs(
        [cfg.get(key) for key in ('train_dataloader', 'val_dataloader',
                                  'test_dataloader')] + [hooks])]
    found += [path for kind, path in evaluator_inputs(
        [cfg.get('val_evaluator'), cfg.get('test_evaluator')])
        if kind == 'annotation file']
    paths = []
    for path in found:
        if not isinstance(path, str):
            continue
        if path.startswith('work-dir://'):
            try:
                path = resolve_checkpoint(path)
            except FileNotFoundError:
                continue
        if '://' in path:
            continue
        path = osp.normpath(osp.join(REPO_ROOT, path))
        if osp.isfile(path) and path != stage.pseudo_label_file and \
                path not in paths:
            paths.append(path)
    return paths


def _teacher_configs(node) -> List[str]:
    """The teacher config files (``*.py``) a config tree names."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in TEACHER_CONFIG_KEYS and isinstance(value, str) and \
                    value.endswith('.py'):
                found.append(value)
            else:
                found += _teacher_configs(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            found += _teacher_configs(value)
    return found


def input_sha256(path: str) -> str:
    """The sha256 of an input: of a config file, of its resolved content
    (its ``_base_`` files merged), else of its bytes."""
    if not path.endswith('.py'):
        return file_sha256(path)
    from mmengine.config import Config
    text = json.dumps(Config.fromfile(path).to_dict(), sort_keys=True,
                      default=str)
    return 'config:' + hashlib.sha256(text.encode()).hexdigest()


def recorded_path(path: str, work_dir: str) -> str:
    """``path`` as a completion record keeps it: under the work dir's or
    the checkout's mark (the work dir first: it may lie in the checkout),
    else absolute."""
    for root, mark in ((work_dir, WORK_DIR_MARK), (REPO_ROOT, REPO_MARK)):
        rel = osp.relpath(path, root)
        if not rel.startswith('..'):
            return osp.join(mark, rel)
    return path


def resolved_path(path: str, work_dir: str) -> str:
    """The file a recorded path (:func:`recorded_path`) names now."""
    for root, mark in ((work_dir, WORK_DIR_MARK), (REPO_ROOT, REPO_MARK)):
        if path.startswith(mark + osp.sep):
            return osp.join(root, path[len(mark) + 1:])
    return path


def provenance(stage: Stage, cfg, work_dir: str, env: Dict[str, str],
               resumed_from: Optional[int] = None) -> dict:
    """The provenance of ``stage`` made with ``cfg`` in the run of
    ``work_dir``, for its completion record."""
    config = flat_config(cfg, work_dir)
    return dict(
        config_sha256=hashlib.sha256(json.dumps(
            config, sort_keys=True).encode()).hexdigest(),
        config=config,
        inputs={recorded_path(p, work_dir): input_sha256(p)
                for p in input_files(stage, cfg)},
        versions=package_versions(), mmcast_version=__version__,
        code=code_identity(), seed=stage.seed,
        threads=env.get('OMP_NUM_THREADS'), device=training_device(env),
        machine=machine_name(training_device(env)),
        resumed_from=resumed_from)


def training_device(env: Dict[str, str]) -> str:
    """'cuda' where a stage launched with ``env`` trains on a GPU (MMEngine
    takes one when it sees one), else 'cpu'."""
    hidden = env.get('CUDA_VISIBLE_DEVICES', None) in ('', '-1')
    return 'cuda' if torch.cuda.is_available() and not hidden else 'cpu'


# (cpuinfo flag, name) of the widest vector instructions worth naming
_VECTOR_ISA = (('avx512f', 'AVX-512'), ('avx2', 'AVX2'), ('asimd', 'NEON'))


@functools.lru_cache(maxsize=None)
def machine_name(device: str = 'cpu') -> str:
    """What a stage ran on, as its cost depends on it: the GPU's name on
    ``'cuda'``; on the CPU its model as Linux names it, its family and
    model numbers and widest vector instructions (two processors sold
    under one name differ in both, and in their floating-point results),
    and the CPUs this process may use, e.g. ``'AMD EPYC (family 26,
    model 2), AVX-512, 2 CPUs'``. Read where the pipeline runs, as
    :func:`training_device`: the stages' own nodes under ``--launcher
    slurm`` may differ."""
    if device == 'cuda':
        return torch.cuda.get_device_name()
    info: Dict[str, str] = {}
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                key, _, value = line.partition(':')
                info.setdefault(key.strip(), value.strip())
                if not line.strip():  # the first processor's block read
                    break
    except OSError:
        pass
    name = info.get('model name') or platform.processor() or \
        platform.machine() or 'an unknown processor'
    if 'cpu family' in info and 'model' in info:
        name += f' (family {info["cpu family"]}, model {info["model"]})'
    flags = set(info.get('flags', info.get('Features', '')).split())
    widest = next((label for flag, label in _VECTOR_ISA if flag in flags),
                  None)
    if widest:
        name += f', {widest}'
    cpus = len(os.sched_getaffinity(0)) \
        if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    return f'{name}, {cpus} CPUs'
