# Copyright (c) mmcast contributors. All rights reserved.
"""The stage configs as the stages load them (their environment, their
options merged)."""
import argparse
import contextlib
import copy
import os
import os.path as osp
from typing import Iterator

from .settings import REPO_ROOT
from .stage import Stage


class StageConfigs:
    """The stage configs as the stages load them (their environment, their
    options merged).

    A part of :class:`~mmcast.apis.pipeline.CASTPipeline`; it uses the
    attributes that class sets.
    """

    @contextlib.contextmanager
    def stage_environment(self) -> Iterator[None]:
        """``os.environ`` as the stages see it (the configs read it)."""
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def config_file(self, path: str):
        """A config as the stages load it (their environment), cached."""
        from mmengine.config import Config

        if path not in self._configs:
            with self.stage_environment():
                self._configs[path] = Config.fromfile(
                    osp.join(REPO_ROOT, path))
        return copy.deepcopy(self._configs[path])

    def load_config(self, stage: Stage):
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

    def val_ann_file(self, stage: Stage) -> str:
        """The val ground truth ``stage``'s ``CocoMetric`` reads."""
        evaluator = self.load_config(stage).val_evaluator
        if isinstance(evaluator, (list, tuple)):
            evaluator = evaluator[0]
        return osp.join(REPO_ROOT, evaluator['ann_file'])
