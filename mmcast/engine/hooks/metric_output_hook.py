# Copyright (c) mmcast contributors. All rights reserved.
"""The files of ``CityScapesMetric`` in the run's work dir.

MMDetection's ``CityScapesMetric`` writes a png and a txt per val image and
``gtInstances.json`` into ``<outfile_prefix>/results/``, and deletes that
folder first. MMDetection's Cityscapes base config names one fixed folder,
``./work_dirs/cityscapes_metric/instance``, for every run: two runs at once
delete and overwrite each other's files (and results). Without an
``outfile_prefix`` the metric works in a temporary folder instead, deleted
with the metric. mmcast's dataset configs give none, and
:class:`MetricOutputHook` (``default_hooks.metric_output`` of every mmcast
runtime) moves such a metric's folder into the run's work dir before each
validation or test: ``<work_dir>/cityscapes_metric/results/``. A metric
given its own ``outfile_prefix`` (the pipeline gives every stage one) is
left as it is.
"""
import os
import os.path as osp
import shutil

from mmdet.evaluation import CityScapesMetric
from mmengine.dist import barrier, is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class MetricOutputHook(Hook):
    """Move every ``CityScapesMetric`` that works in a temporary folder
    (no ``outfile_prefix``) into ``<work_dir>/<folder>/results/``.

    Registered in MMEngine's root registry, so configs of every scope find
    it.

    Args:
        folder (str): The folder in the work dir. Defaults to
            ``'cityscapes_metric'``.
    """

    def __init__(self, folder: str = 'cityscapes_metric') -> None:
        self.folder = folder

    def before_val(self, runner) -> None:
        self._move(runner, runner.val_loop)

    def before_test(self, runner) -> None:
        self._move(runner, runner.test_loop)

    def _move(self, runner, loop) -> None:
        metrics = getattr(getattr(loop, 'evaluator', None), 'metrics', [])
        for metric in metrics:
            if not isinstance(metric, CityScapesMetric) or \
                    metric.tmp_dir is None:
                continue
            out = osp.join(runner.work_dir, self.folder, 'results')
            if is_main_process() and osp.isdir(out):
                shutil.rmtree(out)  # the files of an earlier evaluation
            barrier()
            os.makedirs(out, exist_ok=True)
            metric.tmp_dir.cleanup()
            metric.tmp_dir = None
            metric.outfile_prefix = out
