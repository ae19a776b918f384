# Copyright (c) mmcast contributors. All rights reserved.
"""The instance capacity of a stage config: one value for every cap.

How many instances per image a run can find is decided in four places of a
stage config, each a literal of its own:

* the ``num_queries`` of every model (student, and teacher: inline, or the
  model of the config file that ``model.teacher`` names, changed through
  ``model.teacher_cfg_options``): the Hungarian matching gives each
  ground-truth mask one query, so an image's masks beyond them are never a
  training target, and a model never predicts more objects;
* the ``test_cfg.max_per_image`` of every model: the detections its fusion
  head keeps (the teacher's are its pseudo-label candidates);
* the pseudo-label filter's ``max_per_image`` (``PseudoLabelHook``'s
  ``filter_cfg``; a ``CASTDistiller``'s online ``pseudo_label_filter``);
* the detections per image a mask ``CocoMetric`` counts: pycocotools'
  summary computes the headline mAP (``coco/segm_mAP``) of the top 100 of
  an image whatever ``proposal_nums`` says, the other APs of the last of
  ``proposal_nums`` (1000 by default); with ``use_mp_eval`` (mmdet's
  ``COCOevalMP``) every AP counts the last of ``proposal_nums``. The
  ``CityScapesMetric`` counts every prediction.

:func:`capacity_keys` finds them by key name and type (as
:mod:`.config_handoffs` finds its parts), :func:`config_capacity` reads a
config's capacity (the queries of the model it trains) and refuses a config
where a cap or a teacher is below it, and :func:`capacity_options` gives a
config one capacity: every model at least that many queries (never fewer
than its config has: its pre-trained weights have them), every other cap
exactly that value. :func:`choose_capacity` chooses the one capacity of a
run's stages from its data (the instances per image of D_l and val) and
``--max-instances``.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Tuple

from mmengine.config import Config, ConfigDict

from mmcast.datasets.instance_statistics import (CAPACITY_MARGIN,
                                                 InstanceStatistics,
                                                 capacity_for,
                                                 instance_statistics)
from mmcast.utils import coco_file_checks
from mmcast.utils.config_types import type_name_of
from .config_inputs import dataset_classes, dataset_inputs
from .config_loader import ConfigLoader
from .overrides import Overrides
from .run_spec import RunSpec

QUERIES = 'queries'
KEPT = 'kept detections'
PSEUDO_LABELS = 'pseudo-labels'
EVALUATOR = 'evaluator'
# mmdet's CocoMetric and mmcast's PseudoLabelFilter defaults
DEFAULT_PROPOSAL_NUMS = (100, 300, 1000)
# the detections of an image pycocotools' summary counts in its first AP
COCO_SUMMARY_DETS = 100
DEFAULT_FILTER_MAX = 100
# MaskFormerFusionHead's (and LeanMaskFormerFusionHead's) default
DEFAULT_MAX_PER_IMAGE = 100
# the detections a model keeps per image: Mask2Former's test_cfg, mmdet's
# other heads and mmcast's teachers (box-prompted, ensembles)
KEPT_NAMES = ('max_per_image', 'max_per_img')
# where a stage config sets the teacher of a path: merged into its model
TEACHER_OPTIONS = 'teacher_cfg_options'
# the guide that says what more queries cost
COST_GUIDE = 'docs/en/user_guides/custom_dataset.md'
# reads the config file a ``model.teacher`` names (default: Config.fromfile,
# relative to the working directory)
ConfigReader = Callable[[str], Config]


class CapacityError(ValueError):
    """A config whose caps disagree; the message names the keys."""


@dataclass(frozen=True)
class CapacityKey:
    """One cap of a stage config.

    Args:
        key (str): Its ``--cfg-options`` key.
        value (int): Its value in the config (a default where unset).
        kind (str): :data:`QUERIES`, :data:`KEPT`, :data:`PSEUDO_LABELS` or
            :data:`EVALUATOR`.
        teacher (bool): A cap of a teacher the stage does not train.
    """
    key: str
    value: int
    kind: str
    teacher: bool = False


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_dict(node) -> dict:
    return node.to_dict() if isinstance(node, ConfigDict) else node


def teacher_model(model: dict,
                  read: ConfigReader = Config.fromfile) -> Optional[dict]:
    """The teacher a ``model.teacher`` config path names, as the wrapper
    builds it: the file's ``model`` (a ``CASTDistiller``'s student) with
    ``model.teacher_cfg_options`` merged; None for an inline teacher or
    none. ``read`` loads the file."""
    from mmcast.models.teachers.utils import load_model_cfg
    path = model.get('teacher')
    if not isinstance(path, str):
        return None
    teacher = read(path).model
    if type_name_of(teacher) == 'CASTDistiller':
        teacher = teacher['student']
    return _as_dict(load_model_cfg(teacher, model.get(TEACHER_OPTIONS)))


def _model_keys(node, path: str, teacher: bool) -> Iterator[CapacityKey]:
    """The queries and kept detections of every model under ``node``."""
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield from _model_keys(item, f'{path}.{i}', teacher)
        return
    if not isinstance(node, dict):
        return
    if 'panoptic_fusion_head' in node and 'max_per_image' not in (
            node.get('test_cfg') or {}):  # the fusion heads' default
        yield CapacityKey(f'{path}.test_cfg.max_per_image',
                          DEFAULT_MAX_PER_IMAGE, KEPT, teacher)
    for key, value in node.items():
        where = f'{path}.{key}'
        if key == 'num_queries' and _is_int(value):
            yield CapacityKey(where, value, QUERIES, teacher)
        elif key in KEPT_NAMES and _is_int(value):
            yield CapacityKey(where, value, KEPT, teacher)
        elif key == 'semi_train_cfg' and isinstance(value, dict):
            if value.get('pseudo_label_mode') == 'online':
                cap = (value.get('pseudo_label_filter') or {}).get(
                    'max_per_image', DEFAULT_FILTER_MAX)
                yield CapacityKey(
                    f'{where}.pseudo_label_filter.max_per_image', cap,
                    PSEUDO_LABELS)
        elif key != TEACHER_OPTIONS:
            yield from _model_keys(value, where, teacher or key == 'teacher')


def capacity_keys(cfg: Config,
                  read: ConfigReader = Config.fromfile) -> List[CapacityKey]:
    """Every cap of a stage config (see the module docstring), in the order
    model, teacher of a config path (loaded by ``read``), hooks,
    evaluators."""
    model = _as_dict(cfg.get('model') or {})
    keys = list(_model_keys(model, 'model', False))
    teacher = teacher_model(model, read)
    if teacher is not None:
        keys += _model_keys(teacher, f'model.{TEACHER_OPTIONS}', True)
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if type_name_of(hook) == 'PseudoLabelHook':
            cap = (hook.get('filter_cfg') or {}).get('max_per_image',
                                                     DEFAULT_FILTER_MAX)
            keys.append(CapacityKey(
                f'custom_hooks.{i}.filter_cfg.max_per_image', cap,
                PSEUDO_LABELS))
    for mode in ('val', 'test'):
        evaluators = cfg.get(f'{mode}_evaluator')
        single = isinstance(evaluators, dict)
        for i, metric in enumerate([evaluators] if single else
                                   evaluators or []):
            metrics = metric.get('metric', 'bbox') if isinstance(
                metric, dict) else None
            if type_name_of(metric) != 'CocoMetric' or 'segm' not in (
                    [metrics] if isinstance(metrics, str) else metrics):
                continue
            key = f'{mode}_evaluator' + ('' if single else f'.{i}')
            keys.append(CapacityKey(f'{key}.proposal_nums',
                                    coco_metric_count(metric), EVALUATOR))
    return keys


def coco_metric_count(metric: dict) -> int:
    """The detections per image a ``CocoMetric`` config counts in every AP
    it logs (0 where its headline mAP is -1: no 100 in ``proposal_nums``
    without ``use_mp_eval``)."""
    nums = list(metric.get('proposal_nums', DEFAULT_PROPOSAL_NUMS))
    if metric.get('use_mp_eval'):
        return int(max(nums))
    if COCO_SUMMARY_DETS not in nums:
        return 0
    return int(min(COCO_SUMMARY_DETS, nums[2]))


def binding_key(cfg: Config, read: ConfigReader = Config.fromfile
                ) -> Optional[CapacityKey]:
    """The key that sets a stage config's capacity: the fewest queries or
    kept detections of the models it trains (or tests); None for a config
    without either."""
    own = [k for k in capacity_keys(cfg, read)
           if not k.teacher and k.kind in (QUERIES, KEPT)]
    return min(own, key=lambda k: k.value) if own else None


def config_capacity(cfg: Config, read: ConfigReader = Config.fromfile
                    ) -> Optional[int]:
    """The capacity of a stage config: the most instances per image the
    models it trains (or tests) can return (:func:`binding_key`); None for
    a config without queries or kept detections.

    Raises:
        CapacityError: Naming the config and every key below that
            capacity: a teacher that finds or keeps fewer, or fewer
            pseudo-labels or evaluated detections per image.
    """
    binding = binding_key(cfg, read)
    if binding is None:
        return None
    below = [k for k in capacity_keys(cfg, read) if k.value < binding.value]
    if below:
        where = getattr(cfg, 'filename', None) or 'the config'
        listed = ', '.join(f'{k.key}={k.value} ({k.kind})' for k in below)
        raise CapacityError(
            f'{where}: its models return up to {binding.value} instances '
            f'per image ({binding.key}) but {listed}: every cap downstream '
            'of a model must be at least its capacity, or it drops '
            'instances the model finds')
    return binding.value


def capacity_options(cfg: Config, capacity: int,
                     read: ConfigReader = Config.fromfile) -> Overrides:
    """The overrides that give a stage config the capacity
    ``capacity``: every model's ``num_queries`` at least ``capacity``
    (never fewer than its config has), every ``test_cfg.max_per_image``,
    pseudo-label filter and ``CocoMetric`` exactly ``capacity`` (the
    metric through ``use_mp_eval``, whose summary counts the last of
    ``proposal_nums`` in every AP); only the keys whose value changes."""
    if capacity < 1:
        raise ValueError(f'capacity must be at least 1, got {capacity}')
    options = []
    for key in capacity_keys(cfg, read):
        if key.kind == QUERIES:
            value = max(key.value, capacity)
            if value != key.value:
                options.append((key.key, value))
        elif key.kind == EVALUATOR:
            nums = (min(DEFAULT_PROPOSAL_NUMS[0], capacity),
                    min(DEFAULT_PROPOSAL_NUMS[1], capacity), capacity)
            if key.value != capacity:
                metric = key.key.rsplit('.', 1)[0]
                options += [(key.key, nums), (f'{metric}.use_mp_eval', True)]
        elif key.value != capacity:
            options.append((key.key, capacity))
    return Overrides.of(options)


def with_capacity(cfg: Config, capacity: int,
                  read: ConfigReader = Config.fromfile) -> Config:
    """A copy of ``cfg`` with :func:`capacity_options` merged."""
    return capacity_options(cfg, capacity, read).merged_into(cfg)


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
    cfg = loader.config_file(config)
    own = binding_key(cfg, loader.read)
    stats = _annotation_statistics(cfg, loader.root)
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


def _annotation_statistics(cfg, root: str) -> List[Tuple[
        str, str, InstanceStatistics]]:
    """``(role, note, statistics)`` of the train (D_l) and val annotation
    files of ``cfg`` (relative paths in ``root``); a split not written yet
    is read through the file it is split from, a file not there is left
    out."""
    classes = dataset_classes(cfg)
    found = []
    for role, key in (('D_l', 'train_dataloader'),
                      ('val', 'val_dataloader')):
        for ann_file, _ in dataset_inputs(cfg.get(key)):
            path, note = osp.join(root, ann_file), ''
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


def run_capacity_options(loader: ConfigLoader, config: str,
                         capacity: int) -> Overrides:
    """The overrides that give the run's stage config ``config``
    ``capacity`` (:func:`capacity_options`)."""
    return capacity_options(loader.config_file(config), capacity,
                            loader.read)
