# Copyright (c) mmcast contributors. All rights reserved.
"""The stage configs of a run: found in the table of stage configs, loaded
as the stages load them, and compared with the ones a work dir holds."""
import argparse
import contextlib
import copy
import os
import os.path as osp
from typing import Iterator, Tuple

from .run_spec import RunSpec
from .settings import (REPO_ROOT, RESULT_NEUTRAL_KEYS, SCRIPT_SET_KEYS,
                       TEACHER_STAGES)
from .stage import Stage
from .stage_table import stage_config_path

# what a path into the work dir becomes when two configs are compared
WORK_DIR_MARK = '<work_dir>'


class ConfigLoader:
    """Finds, loads and compares the stage configs of a run.

    Configs are loaded in the stages' environment (``spec.env``: the
    configs read the data root, your classes and the tiny teachers' files
    from it), from the repository root, where the stages run; each file is
    parsed once.

    Args:
        spec (RunSpec): The run.
    """

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self._configs = {}

    def stage_config(self, key: str) -> str:
        """The config of stage ``key`` (``adapt_teacher``, ...,
        ``guided_distillation``) for this run's dataset and teacher, relative
        to the repository (:mod:`~mmcast.apis.pipeline.stage_table`)."""
        teacher = self.spec.teacher if key in TEACHER_STAGES + (
            'toy_foundation', ) else None
        return stage_config_path(self.spec.dataset, key, teacher)

    @contextlib.contextmanager
    def stage_environment(self) -> Iterator[None]:
        """``os.environ`` as the stages see it."""
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.spec.env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    @contextlib.contextmanager
    def in_repository(self) -> Iterator[None]:
        """In the repository, with the stages' environment: where the
        configs' relative paths (teacher configs, data) are read."""
        cwd = os.getcwd()
        os.chdir(REPO_ROOT)
        try:
            with self.stage_environment():
                yield
        finally:
            os.chdir(cwd)

    def config_file(self, path: str):
        """A config as the stages load it (their environment), cached; a
        copy the caller may change."""
        from mmengine.config import Config

        if path not in self._configs:
            with self.stage_environment():
                self._configs[path] = Config.fromfile(
                    osp.join(REPO_ROOT, path))
        return copy.deepcopy(self._configs[path])

    def config_iters(self, path: str) -> int:
        """The ``train_cfg.max_iters`` of a config."""
        return self.config_file(path).train_cfg.max_iters

    def load(self, stage: Stage):
        """The stage's config as its run loads it (options merged)."""
        from mmengine.config import DictAction

        parser = argparse.ArgumentParser()
        parser.add_argument('--cfg-options', nargs='+', action=DictAction)
        cfg = self.config_file(stage.config)
        with self.stage_environment():
            cfg.merge_from_dict(
                parser.parse_args(['--cfg-options'] +
                                  stage.options).cfg_options)
        return cfg

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
        for key in SCRIPT_SET_KEYS:
            ours.pop(key, None)
            theirs.pop(key, None)
        for *parents, key in RESULT_NEUTRAL_KEYS:
            for cfg in (ours, theirs):
                for parent in parents:
                    cfg = cfg.get(parent) if isinstance(cfg, dict) else None
                if isinstance(cfg, dict):
                    cfg.pop(key, None)
        return _plain(ours, (self.spec.work_dir, WORK_DIR_MARK)) == \
            _plain(theirs, (base, WORK_DIR_MARK))


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
