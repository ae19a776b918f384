# Copyright (c) mmcast contributors. All rights reserved.
"""What a stage config reads, found by walking its tree: the annotation
files and image folders of its datasets, its evaluators' files, the
checkpoints its models load and the classes it trains on; the model of a
teacher config; a model built for its shapes only."""
import copy
import os.path as osp
from typing import Callable, Iterator, Optional, Tuple

import torch
from torch import nn

# Keys whose string value is a checkpoint the model (or a part) loads.
CHECKPOINT_KEYS = ('checkpoint', 'teacher_checkpoint', 'detector_checkpoint')
def _join(root: Optional[str], path: str) -> str:
    """``path`` joined with ``root`` as MMEngine's datasets join them."""
    if not root or osp.isabs(path) or '://' in path:
        return path
    return osp.join(root, path)


def dataset_inputs(node) -> Iterator[Tuple[str, Optional[str]]]:
    """``(annotation file, image folder)`` of every dataset config in
    ``node`` (dataset wrappers and lists included).

    A ``PseudoLabeledDataset`` reads its ``unlabeled_ann_file``; its
    ``ann_file`` is the hook's output.
    """
    if isinstance(node, dict):
        ann_key = 'unlabeled_ann_file' if node.get('type') == \
            'PseudoLabeledDataset' else 'ann_file'
        if isinstance(node.get(ann_key), str):
            root = node.get('data_root')
            prefix = (node.get('data_prefix') or {}).get('img')
            yield (_join(root, node[ann_key]),
                   _join(root, prefix) if prefix is not None else None)
        for value in node.values():
            yield from dataset_inputs(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from dataset_inputs(value)


def evaluator_inputs(node) -> Iterator[Tuple[str, str]]:
    """``('annotation file' | 'folder', path)`` that evaluators read."""
    for evaluator in node if isinstance(node, (list, tuple)) else [node]:
        if not isinstance(evaluator, dict):
            continue
        if isinstance(evaluator.get('ann_file'), str):
            yield 'annotation file', evaluator['ann_file']
        if isinstance(evaluator.get('seg_prefix'), str):
            yield 'folder', evaluator['seg_prefix']


def checkpoint_inputs(node, path: str = '') -> Iterator[Tuple[str, str]]:
    """``(config key, checkpoint path)`` of every :data:`CHECKPOINT_KEYS`
    value in a (model or hook) config."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f'{path}.{key}' if path else key
            if key in CHECKPOINT_KEYS and isinstance(value, str):
                yield where, value
            else:
                yield from checkpoint_inputs(value, where)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from checkpoint_inputs(value, f'{path}.{i}')


def dataset_classes(cfg) -> Optional[Tuple[str, ...]]:
    """The class names of a config's training data, if it names them."""
    from mmdet.registry import DATASETS

    stack = [cfg.get('train_dataloader')]
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            classes = (node.get('metainfo') or {}).get('classes')
            if classes:
                return tuple(classes)
            dataset_cls = DATASETS.get(node['type']) if isinstance(
                node.get('type'), str) and 'ann_file' in node else None
            if dataset_cls is not None and \
                    getattr(dataset_cls, 'METAINFO', {}).get('classes'):
                return tuple(dataset_cls.METAINFO['classes'])
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return None


def build_shape_model(model_cfg: dict) -> nn.Module:
    """The model of ``model_cfg`` for its shapes only, without weights.

    Built on the ``meta`` device where the model allows it; a
    ``CASTDistiller`` without its teacher (which would load weights).
    """
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    cfg = copy.deepcopy(model_cfg)
    if cfg.get('type') == 'CASTDistiller':
        cfg['teacher'] = cfg['teacher_checkpoint'] = None
    scope = None if DefaultScope.get_current_instance() else 'mmdet'
    with DefaultScope.overwrite_default_scope(scope):
        try:
            with torch.device('meta'):
                return MODELS.build(cfg)
        except Exception:  # noqa: BLE001 - some modules need real tensors
            return MODELS.build(cfg)


def model_config_of(config_file: str,
                    cfg_options: Optional[dict] = None,
                    read: Optional[Callable] = None) -> dict:
    """The teacher model of a config file (a ``CASTDistiller``'s student),
    with ``cfg_options`` merged as the wrapper merges its
    ``teacher_cfg_options``; ``read`` loads the file (default: MMEngine's
    ``Config.fromfile``)."""
    from mmengine.config import Config

    from mmcast.models.teachers.utils import load_model_cfg

    model = copy.deepcopy((read or Config.fromfile)(config_file).model)
    if model.get('type') == 'CASTDistiller':
        model = model['student']
    return load_model_cfg(model, cfg_options) if cfg_options else model
