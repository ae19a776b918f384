# Copyright (c) mmcast contributors. All rights reserved.
"""The instance capacity of a run: how many instances per image its models
find and keep, one value for every stage (see
:mod:`mmcast.apis.instance_capacity`)."""
import contextlib
import os
import os.path as osp
from functools import cached_property
from typing import Iterator, List, Optional, Tuple

from mmcast.datasets.instance_statistics import (CAPACITY_MARGIN,
                                                 InstanceStatistics,
                                                 capacity_for,
                                                 instance_statistics)
from mmcast.utils import coco_file_checks
from mmcast.utils.preflight import dataset_classes, dataset_inputs
from ..instance_capacity import binding_key, capacity_options
from .settings import REPO_ROOT

# the guide that says what more queries cost
COST_GUIDE = 'docs/en/user_guides/custom_dataset.md'


class RunCapacity:
    """The instance capacity of a run.

    The preflight reads the annotation files of the labeled split D_l and
    of val (of the labels-only baseline's config, which every run has) and
    prints their instances per image. For ``custom`` / ``custom-cpu``, data
    denser than the configs' capacity (:func:`~mmcast.apis.
    instance_capacity.binding_key` of the baseline's config) set the
    capacity of every stage to :func:`~mmcast.datasets.
    instance_statistics.capacity_for` their 99th percentile; for the other
    datasets a denser D_l gets a note. ``--max-instances`` sets it for any
    dataset. :meth:`stage_capacity_options` turns it into each stage's
    ``--cfg-options`` (:func:`~mmcast.apis.instance_capacity.
    capacity_options`).

    A part of :class:`~mmcast.apis.pipeline.CASTPipeline`; it uses the
    attributes that class sets.
    """

    @contextlib.contextmanager
    def _in_repository(self) -> Iterator[None]:
        """In the repository, with the stages' environment: where the
        configs' relative paths (teacher configs, data) are read."""
        cwd = os.getcwd()
        os.chdir(REPO_ROOT)
        try:
            with self.stage_environment():
                yield
        finally:
            os.chdir(cwd)

    def _annotation_statistics(self, cfg) -> List[Tuple[str, str,
                                                        InstanceStatistics]]:
        """``(role, note, statistics)`` of the train (D_l) and val
        annotation files of ``cfg``; a split not written yet is read
        through the file it is split from, a file not there is left out."""
        classes = dataset_classes(cfg)
        found = []
        for role, key in (('D_l', 'train_dataloader'),
                          ('val', 'val_dataloader')):
            for ann_file, _ in dataset_inputs(cfg.get(key)):
                path, note = osp.join(REPO_ROOT, ann_file), ''
                source = coco_file_checks.split_source(path)
                if not osp.isfile(path) and source is not None:
                    path, note = source, (' (D_l is not written yet: the '
                                          'file it is split from)')
                if osp.isfile(path):
                    found.append((role, note, instance_statistics(
                        osp.normpath(path), classes)))
        return found

    @cached_property
    def capacity(self) -> Optional[int]:
        """The capacity every stage gets, or None: the configs' own.

        Prints the instances per image of D_l and val, and the capacity
        chosen and why (a note where the configs' own is below the 99th
        percentile of D_l, or where images of D_l hold more instances than
        the capacity).
        """
        asked = self.args.max_instances
        if asked is not None and asked < 1:
            raise SystemExit(f'--max-instances {asked}: at least 1')
        config = self.stage_config('supervised_student')
        with self._in_repository():
            cfg = self.config_file(config)
            own = binding_key(cfg)
            stats = self._annotation_statistics(cfg)
        for role, note, st in stats:
            print(f'instances per image, {role}: {st.describe()}{note}',
                  flush=True)
        if own is None:
            return asked
        p99 = max((st.p99 for _, _, st in stats), default=0)
        needed = capacity_for(p99)
        why = (f'the next multiple of 10 at or above {CAPACITY_MARGIN:g} x '
               f'{p99}, the 99th percentile of instances per image of D_l '
               'and val')
        capacity = None
        if asked is not None:
            capacity = asked
            print(f'capacity: {asked} instances per image (--max-instances; '
                  f'the data ask {needed}, {why}; the configs\' own: '
                  f'{own.value})' + ('' if asked >= own.value else
                                     f': the models keep their '
                                     f'{own.value} queries'), flush=True)
        elif self.custom and needed > own.value:
            capacity = needed
            print(f'capacity: {needed} instances per image, for every '
                  f'stage\'s queries, kept detections, pseudo-labels and '
                  f'evaluator: {why}, above the configs\' own {own.value} '
                  f'({own.key} of {config}); --max-instances N sets '
                  'another', flush=True)
        elif self.custom:
            print(f'capacity: the configs\' own, {own.value} instances per '
                  f'image ({own.key} of {config}): at least {why} '
                  f'({needed}); --max-instances N sets another', flush=True)
        elif stats and stats[0][0] == 'D_l' and stats[0][2].p99 > own.value:
            st = stats[0][2]
            print(f'note: {st.ann_file}: 99 % of the images of D_l have up '
                  f'to {st.p99} instances, more than the {own.value} per '
                  f'image the models of the configs find ({own.key} of '
                  f'{config}): the rest is never learned nor predicted; '
                  f'--max-instances {needed} raises the capacity (what more '
                  f'queries cost: {COST_GUIDE})', flush=True)
        self._note_images_over(stats, capacity or own.value)
        return capacity

    @staticmethod
    def _note_images_over(stats, capacity: int) -> None:
        """A note on the images of D_l with more instances than
        ``capacity``: their extra instances are no training target."""
        for role, _, st in stats:
            over = int((st.counts > capacity).sum())
            if role == 'D_l' and over:
                print(f'note: {over} of the {st.num_images} images of '
                      f'{st.ann_file} have more instances than the capacity '
                      f'{capacity} (up to {st.max}): the matching gives each '
                      f'query one of them, the others are no training '
                      'target', flush=True)

    def stage_capacity_options(self, config: str) -> List[str]:
        """The ``--cfg-options`` that give a stage config the run's
        capacity (none while it keeps the configs' own)."""
        if self.capacity is None:
            return []
        with self._in_repository():
            return capacity_options(self.config_file(config), self.capacity)
