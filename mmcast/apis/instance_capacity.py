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
exactly that value.
"""
import argparse
import copy
from dataclasses import dataclass
from typing import Iterator, List, Optional

from mmengine.config import Config, ConfigDict, DictAction

from mmcast.utils.config_types import type_name_of

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


def teacher_model(model: dict) -> Optional[dict]:
    """The teacher a ``model.teacher`` config path names, as the wrapper
    builds it: the file's ``model`` (a ``CASTDistiller``'s student) with
    ``model.teacher_cfg_options`` merged; None for an inline teacher or
    none."""
    from mmcast.models.teachers.utils import load_model_cfg
    path = model.get('teacher')
    if not isinstance(path, str):
        return None
    teacher = Config.fromfile(path).model
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


def capacity_keys(cfg: Config) -> List[CapacityKey]:
    """Every cap of a stage config (see the module docstring), in the order
    model, teacher of a config path, hooks, evaluators."""
    model = _as_dict(cfg.get('model') or {})
    keys = list(_model_keys(model, 'model', False))
    teacher = teacher_model(model)
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


def binding_key(cfg: Config) -> Optional[CapacityKey]:
    """The key that sets a stage config's capacity: the fewest queries or
    kept detections of the models it trains (or tests); None for a config
    without either."""
    own = [k for k in capacity_keys(cfg)
           if not k.teacher and k.kind in (QUERIES, KEPT)]
    return min(own, key=lambda k: k.value) if own else None


def config_capacity(cfg: Config) -> Optional[int]:
    """The capacity of a stage config: the most instances per image the
    models it trains (or tests) can return (:func:`binding_key`); None for
    a config without queries or kept detections.

    Raises:
        CapacityError: Naming the config and every key below that
            capacity: a teacher that finds or keeps fewer, or fewer
            pseudo-labels or evaluated detections per image.
    """
    binding = binding_key(cfg)
    if binding is None:
        return None
    below = [k for k in capacity_keys(cfg) if k.value < binding.value]
    if below:
        where = getattr(cfg, 'filename', None) or 'the config'
        listed = ', '.join(f'{k.key}={k.value} ({k.kind})' for k in below)
        raise CapacityError(
            f'{where}: its models return up to {binding.value} instances '
            f'per image ({binding.key}) but {listed}: every cap downstream '
            'of a model must be at least its capacity, or it drops '
            'instances the model finds')
    return binding.value


def capacity_options(cfg: Config, capacity: int) -> List[str]:
    """``--cfg-options`` that give a stage config the capacity
    ``capacity``: every model's ``num_queries`` at least ``capacity``
    (never fewer than its config has), every ``test_cfg.max_per_image``,
    pseudo-label filter and ``CocoMetric`` exactly ``capacity`` (the
    metric through ``use_mp_eval``, whose summary counts the last of
    ``proposal_nums`` in every AP); only the keys whose value changes."""
    if capacity < 1:
        raise ValueError(f'capacity must be at least 1, got {capacity}')
    options = []
    for key in capacity_keys(cfg):
        if key.kind == QUERIES:
            value = max(key.value, capacity)
            if value != key.value:
                options.append(f'{key.key}={value}')
        elif key.kind == EVALUATOR:
            nums = (min(DEFAULT_PROPOSAL_NUMS[0], capacity),
                    min(DEFAULT_PROPOSAL_NUMS[1], capacity), capacity)
            if key.value != capacity:
                metric = key.key.rsplit('.', 1)[0]
                options += [f'{key.key}=({nums[0]},{nums[1]},{nums[2]})',
                            f'{metric}.use_mp_eval=True']
        elif key.value != capacity:
            options.append(f'{key.key}={capacity}')
    return options


def with_capacity(cfg: Config, capacity: int) -> Config:
    """A copy of ``cfg`` with :func:`capacity_options` merged as
    ``--cfg-options`` are (MMEngine's ``DictAction``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = copy.deepcopy(cfg)
    options = capacity_options(cfg, capacity)
    if options:
        cfg.merge_from_dict(
            parser.parse_args(['--cfg-options', *options]).cfg_options)
    return cfg
