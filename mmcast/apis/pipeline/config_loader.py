# Copyright (c) mmcast contributors. All rights reserved.
"""The stage configs of a run: found in the table of stage configs, loaded
as the stages load them, and compared with the ones a work dir holds."""
import copy
import os
import os.path as osp
import threading
from typing import Tuple

from .overrides import Overrides
from .run_spec import RunSpec
from .settings import (REPO_ROOT, RESULT_NEUTRAL_KEYS, SCRIPT_SET_KEYS,
                       STUDENT_STAGES, TEACHER_STAGES)
from .stage import Stage
from .stage_table import stage_config_path

# what a path into the work dir becomes when two configs are compared
WORK_DIR_MARK = '<work_dir>'


class ConfigLoader:
    """Finds, loads and compares the stage configs of a run.

    Configs are loaded as the stages load them: their placeholders read the
    stages' environment (``spec.env``: the data root, your classes and the
    tiny teachers' files), given explicitly
    (:func:`~mmcast.utils.config_files.load_config`), and relative paths
    are in the repository root, where the stages run. The process'
    environment and working directory are never changed, so threads may
    load configs at once. Each file is parsed once.

    Args:
        spec (RunSpec): The run.
    """

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.root = REPO_ROOT
        self._configs = {}
        self._lock = threading.Lock()

    def stage_config(self, key: str) -> str:
        """The config of stage ``key`` (``adapt_teacher``, ...,
        ``guided_distillation``) for this run's dataset, teacher and
        student, relative to the repository
        (:mod:`~mmcast.apis.pipeline.stage_table`)."""
        teacher = self.spec.teacher if key in TEACHER_STAGES else None
        variant = self.spec.student if key in STUDENT_STAGES else None
        return stage_config_path(self.spec.dataset, key, teacher, variant)

    def read(self, path: str):
        """The config file at ``path`` (relative to the repository, or
        absolute) as the stages load it, cached: the cached object itself,
        not to be changed (:meth:`config_file` gives a copy)."""
        from mmcast.utils.config_files import load_config

        path = osp.normpath(osp.join(self.root, path))
        with self._lock:
            cfg = self._configs.get(path)
        if cfg is None:
            cfg = load_config(path, self.spec.env)
            with self._lock:
                cfg = self._configs.setdefault(path, cfg)
        return cfg

    def config_file(self, path: str):
        """A config as the stages load it; a copy the caller may change."""
        return copy.deepcopy(self.read(path))

    def config_iters(self, path: str) -> int:
        """The ``train_cfg.max_iters`` of a config."""
        return self.read(path).train_cfg.max_iters

    def merged(self, config: str, overrides: Overrides):
        """The config ``config`` with ``overrides`` merged, as a stage with
        them loads it."""
        return overrides.merged_into(self.read(config))

    def load(self, stage: Stage):
        """The stage's config as its run loads it (overrides merged)."""
        return self.merged(stage.config, stage.overrides)

    @staticmethod
    def in_repo(path: str) -> str:
        """A config path as the stages (run in the repository) see it."""
        return osp.normpath(osp.join(REPO_ROOT, path))

    def val_ann_file(self, stage: Stage) -> str:
        """The val ground truth ``stage``'s ``CocoMetric`` reads."""
        evaluator = self.load(stage).val_evaluator
        if isinstance(evaluator, (list, tuple)):
            evaluator = evaluator[0]
        return osp.join(REPO_ROOT, evaluator['ann_file'])

    def same_config(self, stage: Stage, source: str) -> bool:
        """Whether the config ``stage`` would run with is the one MMEngine
        dumped into ``source`` when it trained (or tested) there, paths into
        the two work dirs alike and the keys of
        :data:`~mmcast.apis.pipeline.settings.RESULT_NEUTRAL_KEYS` and
        :data:`~mmcast.apis.pipeline.settings.SCRIPT_SET_KEYS` left out.

        The work dir the stage trained in is the one its dumped config
        names (a work dir copied or moved since, or a stage linked from
        another run, names its old place), else where ``source`` leads.
        """
        from mmengine.config import Config

        dumped = osp.join(source, osp.basename(stage.config))
        if not osp.isfile(dumped):
            return False
        try:
            theirs = Config.fromfile(dumped).to_dict()
        except Exception:  # noqa: BLE001 - cut short (a full disk, say)
            return False
        rel = os.sep + osp.relpath(stage.work_dir, self.spec.work_dir)
        trained_in = str(theirs.get('work_dir') or '')
        if not trained_in.endswith(rel):
            trained_in = osp.realpath(source)
        base = trained_in[:-len(rel)] if trained_in.endswith(rel) else \
            source[:-len(rel)]
        ours = self.load(stage).to_dict()
        if stage.checkpoint:  # what test.py sets from --checkpoint
            ours['load_from'] = stage.checkpoint
        if theirs.get('resume'):  # train.py --resume replaced its load_from
            ours.pop('load_from', None)
            theirs.pop('load_from', None)
        without_neutral_keys(ours)
        without_neutral_keys(theirs)
        return _plain(ours, (self.spec.work_dir, WORK_DIR_MARK)) == \
            _plain(theirs, (base, WORK_DIR_MARK))


def without_neutral_keys(tree: dict) -> dict:
    """``tree`` (a config as a dict) without the keys the scripts set
    (:data:`~mmcast.apis.pipeline.settings.SCRIPT_SET_KEYS`) and those that
    do not change a stage's result (:data:`~mmcast.apis.pipeline.settings.
    RESULT_NEUTRAL_KEYS`), removed in place; returns it."""
    for key in SCRIPT_SET_KEYS:
        tree.pop(key, None)
    for *parents, key in RESULT_NEUTRAL_KEYS:
        node = tree
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(key, None)
    return tree


def _plain(value, move: Tuple[str, str] = ('', '')):
    """A config value with tuples as lists (as a dumped config reads) and,
    in its strings, the path ``move[0]`` replaced by ``move[1]``."""
    if isinstance(value, dict):
        return {k: _plain(v, move) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, move) for v in value]
    if isinstance(value, str) and move[0]:
        return value.replace(*move)
    return value
