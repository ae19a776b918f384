# Copyright (c) mmcast contributors. All rights reserved.
"""The instance capacity of a run: how many instances per image its models
find and keep, one value for every stage (see
:mod:`mmcast.apis.instance_capacity`)."""
import os.path as osp
from typing import List, Optional, Tuple

from mmcast.datasets.instance_statistics import (CAPACITY_MARGIN,
                                                 InstanceStatistics,
                                                 capacity_for,
                                                 instance_statistics)
from mmcast.utils import coco_file_checks
from mmcast.apis.preflight import dataset_classes, dataset_inputs
from ..instance_capacity import binding_key
from ..instance_capacity import capacity_options as _options
from .config_loader import ConfigLoader
from .run_spec import RunSpec
from .settings import REPO_ROOT

# the guide that says what more queries cost
COST_GUIDE = 'docs/en/user_guides/custom_dataset.md'


def choose_capacity(spec: RunSpec,
                    loader: ConfigLoader) -> Tuple[Optional[int], List[str]]:
    """The capacity every stage gets (``None``: the configs' own), and the
    lines that say why.

    The instances per image of D_l and val (of the labels-only baseline's
    config, which every run has) are told. For ``custom`` / ``custom-cpu``,
    data denser than the configs' capacity (:func:`~mmcast.apis.
    instance_capacity.binding_key` of the baseline's config) set the
    capacity to :func:`~mmcast.datasets.instance_statistics.capacity_for`
    their 99th percentile; for the other datasets a denser D_l gets a note;
    ``--max-instances`` sets it for any dataset. A note also counts the
    images of D_l with more instances than the capacity.
    """
    asked = spec.max_instances
    config = loader.stage_config('supervised_student')
    with loader.in_repository():
        cfg = loader.config_file(config)
        own = binding_key(cfg)
        stats = _annotation_statistics(cfg)
    lines = [f'instances per image, {role}: {st.describe()}{note}'
             for role, note, st in stats]
    if own is None:
        return asked, lines
    p99 = max((st.p99 for _, _, st in stats), default=0)
    needed = capacity_for(p99)
    why = (f'the next multiple of 10 at or above {CAPACITY_MARGIN:g} x '
           f'{p99}, the 99th percentile of instances per image of D_l and '
           'val')
    capacity = None
    if asked is not None:
        capacity = asked
        lines.append(
            f'capacity: {asked} instances per image (--max-instances; the '
            f'data ask {needed}, {why}; the configs\' own: {own.value})' +
            ('' if asked >= own.value else
             f': the models keep their {own.value} queries'))
    elif spec.custom and needed > own.value:
        capacity = needed
        lines.append(
            f'capacity: {needed} instances per image, for every stage\'s '
            f'queries, kept detections, pseudo-labels and evaluator: {why}, '
            f'above the configs\' own {own.value} ({own.key} of {config}); '
            '--max-instances N sets another')
    elif spec.custom:
        lines.append(
            f'capacity: the configs\' own, {own.value} instances per image '
            f'({own.key} of {config}): at least {why} ({needed}); '
            '--max-instances N sets another')
    elif stats and stats[0][0] == 'D_l' and stats[0][2].p99 > own.value:
        st = stats[0][2]
        lines.append(
            f'note: {st.ann_file}: 99 % of the images of D_l have up to '
            f'{st.p99} instances, more than the {own.value} per image the '
            f'models of the configs find ({own.key} of {config}): the rest '
            f'is never learned nor predicted; --max-instances {needed} '
            f'raises the capacity (what more queries cost: {COST_GUIDE})')
    lines += _images_over(stats, capacity or own.value)
    return capacity, lines


def _annotation_statistics(cfg) -> List[Tuple[str, str,
                                              InstanceStatistics]]:
    """``(role, note, statistics)`` of the train (D_l) and val annotation
    files of ``cfg``; a split not written yet is read through the file it
    is split from, a file not there is left out."""
    classes = dataset_classes(cfg)
    found = []
    for role, key in (('D_l', 'train_dataloader'),
                      ('val', 'val_dataloader')):
        for ann_file, _ in dataset_inputs(cfg.get(key)):
            path, note = osp.join(REPO_ROOT, ann_file), ''
            source = coco_file_checks.split_source(path)
            if not osp.isfile(path) and source is not None:
                path, note = source, (' (D_l is not written yet: the file '
                                      'it is split from)')
            if osp.isfile(path):
                found.append((role, note, instance_statistics(
                    osp.normpath(path), classes)))
    return found


def _images_over(stats, capacity: int) -> List[str]:
    """A note on the images of D_l with more instances than ``capacity``:
    their extra instances are no training target."""
    lines = []
    for role, _, st in stats:
        over = int((st.counts > capacity).sum())
        if role == 'D_l' and over:
            lines.append(
                f'note: {over} of the {st.num_images} images of '
                f'{st.ann_file} have more instances than the capacity '
                f'{capacity} (up to {st.max}): the matching gives each query '
                'one of them, the others are no training target')
    return lines


def capacity_options(loader: ConfigLoader, config: str,
                     capacity: int) -> List[str]:
    """The ``--cfg-options`` that give a stage config ``capacity``
    (:func:`~mmcast.apis.instance_capacity.capacity_options`)."""
    with loader.in_repository():
        return _options(loader.config_file(config), capacity)
