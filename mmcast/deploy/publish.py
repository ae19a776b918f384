# Copyright (c) mmcast contributors. All rights reserved.
"""Publish the deployable model of any mmcast stage checkpoint.

A stage checkpoint holds much more than the model that is deployed: the
optimizer and message hub, and for the teacher–student wrappers the
teacher (``GuidedDistiller``) or the student under ``student.``
(``CASTDistiller``); a ``CASTMask2Former`` adds CAST's projection head and
strong view, which only the training loss uses. :func:`publish` keeps the
model that ``mim test`` of the stage config evaluates, as a stock
MMDetection ``Mask2Former`` (head ``Mask2FormerHead``), or for the
encoder-only student as an inference-only ``EoMTStudent`` (without its
strong view and ``L_pxl`` parts):

* ``<out_dir>/<name>-<first 8 hex of sha256>.pth``: ``state_dict`` (keys
  of the stock model, optionally fp16) and ``meta`` of plain types
  (``dataset_meta`` with the class names, the capacity (``num_queries``,
  ``max_per_image`` and ``capacity``, the instances per image it finds at
  most), the published config text in ``cfg``, the source checkpoint's
  name, iteration and sha256), loadable with
  ``torch.load(weights_only=True)`` without mmcast;
* ``<out_dir>/<name>.py``: the plain MMDetection config of that model with
  the stage config's test/val data, evaluators and runtime settings; it
  imports ``mmcast`` only when mmcast modules remain (e.g. the DINOv2
  backbone or the DPT pixel decoder).

Both are written atomically; the published weights are checked to load
into the model built from the published config with ``strict=True``.
``tools/publish_model.py`` is its command line.
"""
import copy
import hashlib
import io
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple

import mmdet.registry as mmdet_registries
import numpy as np
import torch
from mmdet.registry import DATASETS
from mmengine.config import Config, ConfigDict
from mmengine.registry import Registry

from mmcast.utils.atomic_io import atomic_open
from mmcast.utils.config_reading import read_config
from mmcast.utils.config_types import type_name_of
from mmcast.utils.file_hashing import file_sha256
from .loading import WRAPPERS, load_student, student_part

# Detectors that publishing knows: the (CAST)Mask2Former students, published
# as a stock Mask2Former, and the encoder-only student.
DETECTORS = ('Mask2Former', 'CASTMask2Former', 'EoMTStudent')
# Parts of an EoMTStudent config that only its training loss uses.
EOMT_TRAINING_ONLY = ('strong_view', 'projection_head', 'loss_pixel_contrast')
# Top-level config keys that evaluation and inference use.
KEPT_KEYS = ('default_scope', 'backend_args', 'test_pipeline',
             'val_dataloader', 'val_evaluator', 'val_cfg', 'test_dataloader',
             'test_evaluator', 'test_cfg', 'default_hooks', 'env_cfg',
             'model_wrapper_cfg', 'log_processor', 'log_level',
             'vis_backends', 'visualizer')
# Training-time hooks of mmcast with a stock MMEngine equivalent (``None``:
# nothing to evaluate or run a published model with).
STOCK_HOOKS = dict(AtomicCheckpointHook='CheckpointHook',
                   MetricOutputHook=None, RandomStateHook=None)


class PublishError(ValueError):
    """A stage config whose model cannot be published."""


def deployable_part(model_cfg: dict) -> Tuple[dict, str]:
    """The detector that ``predict`` of a stage model runs, and its prefix
    (:func:`~mmcast.deploy.loading.student_part`), when it is one that
    publishing knows (:data:`DETECTORS`).

    Args:
        model_cfg (dict): The stage config's ``model``.

    Returns:
        tuple[dict, str]: The detector's config (with the data preprocessor
        that the stage model applies at test time) and the prefix of its
        keys in the stage checkpoint (``'student.'``, ``'teacher.'`` or
        ``''``).

    Raises:
        PublishError: For a model type that has no deployable detector.
    """
    type_ = type_name_of(model_cfg)
    if type_ not in DETECTORS + WRAPPERS:
        raise PublishError(
            f'model.type={type_!r}: publish_model knows the detectors '
            f'{DETECTORS} and the wrappers {WRAPPERS}')
    detector, prefix = student_part(model_cfg)
    if type_name_of(detector) not in DETECTORS:
        raise PublishError(f'model.{prefix.rstrip(".")}.type='
                           f'{type_name_of(detector)!r}: publish_model knows '
                           f'the detectors {DETECTORS}')
    return detector, prefix


def _drop_pretrained(cfg: Any) -> Any:
    """Remove ``Pretrained`` init configs (the weights are all published)."""
    if isinstance(cfg, list):
        return [_drop_pretrained(c) for c in cfg]
    if not isinstance(cfg, dict):
        return cfg
    out = {}
    for key, value in cfg.items():
        if key == 'init_cfg':
            inits = value if isinstance(value, list) else [value]
            inits = [i for i in inits if not (
                isinstance(i, dict) and type_name_of(i) == 'Pretrained')]
            value = None if not inits else (
                inits if isinstance(value, list) else inits[0])
        out[key] = _drop_pretrained(value)
    return out


def stock_mask2former_cfg(detector: dict) -> dict:
    """A (CAST)Mask2Former config as a stock, inference-only Mask2Former.

    ``CASTMask2Former`` → ``Mask2Former`` without ``strong_view``;
    ``CASTMask2FormerHead`` / ``FP32LossMask2FormerHead`` →
    ``Mask2FormerHead`` without ``contrast_level``, ``projection_head`` and
    ``loss_pixel_contrast``;
    ``LeanMaskFormerFusionHead`` → ``MaskFormerFusionHead`` with
    ``test_cfg.max_per_image`` clamped to ``num_queries × num_classes``
    (what the lean head keeps), so any class count predicts the same
    (without ``test_cfg.score_thr``, which the stock head does not read:
    results under it are then kept);
    ``train_cfg`` (the Hungarian assigner) and the detector's ``init_cfg``
    are dropped, as are ``Pretrained`` initialisations inside.
    """
    model = copy.deepcopy(detector)
    model['type'] = 'Mask2Former'
    model.pop('strong_view', None)
    model.pop('train_cfg', None)
    model.pop('init_cfg', None)
    head = dict(model['panoptic_head'])
    if type_name_of(head) in ('CASTMask2FormerHead',
                              'FP32LossMask2FormerHead'):
        head['type'] = 'Mask2FormerHead'
        for key in ('contrast_level', 'projection_head',
                    'loss_pixel_contrast'):
            head.pop(key, None)
    model['panoptic_head'] = head
    fusion = dict(model.get('panoptic_fusion_head') or {})
    if type_name_of(fusion) == 'LeanMaskFormerFusionHead':
        fusion['type'] = 'MaskFormerFusionHead'
        model['panoptic_fusion_head'] = fusion
        # stock defaults: 100 queries, 80 thing + 53 stuff classes, 100 kept
        num_pairs = head.get('num_queries', 100) * (
            fusion.get('num_things_classes', 80) +
            fusion.get('num_stuff_classes', 53))
        test_cfg = dict(model.get('test_cfg') or {})
        test_cfg['max_per_image'] = min(
            test_cfg.get('max_per_image', 100), num_pairs)
        test_cfg.pop('score_thr', None)
        model['test_cfg'] = test_cfg
    return _drop_pretrained(model)


def inference_eomt_cfg(detector: dict) -> dict:
    """An ``EoMTStudent`` config without its training-only parts
    (:data:`EOMT_TRAINING_ONLY`: no contrastive branch is built), the
    detector's ``init_cfg`` and ``Pretrained`` initialisations inside.
    ``train_cfg`` stays: the criterion (no weights) is built from it."""
    model = copy.deepcopy(detector)
    for key in EOMT_TRAINING_ONLY + ('init_cfg', ):
        model.pop(key, None)
    return _drop_pretrained(model)


def published_model_cfg(detector: dict) -> dict:
    """The published model of a deployable detector
    (:func:`deployable_part`): :func:`stock_mask2former_cfg` or
    :func:`inference_eomt_cfg`."""
    if type_name_of(detector) == 'EoMTStudent':
        return inference_eomt_cfg(detector)
    return stock_mask2former_cfg(detector)


def _config_types(cfg: Any) -> set:
    """Every ``type`` string in a nested config."""
    if isinstance(cfg, dict):
        found = {cfg['type']} if isinstance(cfg.get('type'), str) else set()
        for value in cfg.values():
            found |= _config_types(value)
        return found
    if isinstance(cfg, (list, tuple)):
        return set().union(*(_config_types(c) for c in cfg)) if cfg else set()
    return set()


def mmcast_types() -> set:
    """Names that mmcast registered in MMDetection's registries."""
    names = set()
    for registry in vars(mmdet_registries).values():
        if isinstance(registry, Registry):
            names |= {
                name for name, cls in registry.module_dict.items()
                if getattr(cls, '__module__', '').startswith('mmcast')
            }
    return names


def stock_default_hooks(hooks: dict) -> dict:
    """``default_hooks`` with mmcast's training-time hooks replaced by
    their stock equivalents (:data:`STOCK_HOOKS`) or dropped."""
    stock = {}
    for key, hook in hooks.items():
        name = type_name_of(hook)
        if name not in STOCK_HOOKS:
            stock[key] = hook
        elif STOCK_HOOKS[name] is not None:
            stock[key] = dict(hook, type=STOCK_HOOKS[name])
    return stock


def published_config(stage_cfg: Config, model: dict) -> Config:
    """The plain MMDetection config of the published model.

    Args:
        stage_cfg (Config): The stage config.
        model (dict): The published model's config
            (:func:`published_model_cfg`).

    Returns:
        Config: ``model``, ``load_from=None`` and the stage config's test/val
        data, evaluators, loops and runtime settings (``KEPT_KEYS``; the
        default hooks stock, see :func:`stock_default_hooks`), with
        ``custom_imports=dict(imports=['mmcast'])`` only where a type that
        mmcast registers remains.
    """
    cfg = {
        key: copy.deepcopy(stage_cfg[key])
        for key in KEPT_KEYS if key in stage_cfg
    }
    cfg = {k: v.to_dict() if isinstance(v, ConfigDict) else v
           for k, v in cfg.items()}
    if 'default_hooks' in cfg:
        cfg['default_hooks'] = stock_default_hooks(cfg['default_hooks'])
    cfg.update(model=model, load_from=None, resume=False)
    if _config_types(cfg) & mmcast_types():
        imports = dict(imports=['mmcast'], allow_failed_imports=False)
        cfg = dict(custom_imports=imports, **cfg)
    return Config(cfg)


def model_capacity(model: dict) -> Dict[str, int]:
    """How many instances per image a published model finds:
    ``num_queries``, ``max_per_image`` (what its fusion head keeps) and the
    ``capacity``, the fewer of the two."""
    queries = (model['panoptic_head'].get('num_queries', 100)
               if 'panoptic_head' in model else model.get('num_queries', 100))
    kept = (model.get('test_cfg') or {}).get('max_per_image', 100)
    return dict(num_queries=queries, max_per_image=kept,
                capacity=min(queries, kept))


def _plain(value: Any) -> Any:
    """``value`` as types that ``torch.load(weights_only=True)`` accepts."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def dataset_meta(checkpoint: dict, cfg: Config) -> Optional[dict]:
    """The checkpoint's ``dataset_meta`` (class names, palette), or else the
    test dataset's ``metainfo``; None if neither is known."""
    meta = (checkpoint.get('meta') or {}).get('dataset_meta')
    if isinstance(meta, (list, tuple)):  # mmdet's ConcatDataset
        meta = meta[0] if meta else None
    if meta:
        return _plain(meta)
    dataset = cfg.get('test_dataloader', {}).get('dataset')
    if dataset is None:
        return None
    dataset = copy.deepcopy(dataset)
    dataset['lazy_init'] = True
    return _plain(DATASETS.build(dataset).metainfo)


def publish(config: str,
            checkpoint: str,
            out_dir: str,
            name: Optional[str] = None,
            fp16: bool = False,
            cfg_options: Optional[dict] = None) -> Dict[str, str]:
    """Publish the deployable model of a stage checkpoint.

    Args:
        config (str): The stage config (or the copy in its work dir).
        checkpoint (str): The stage checkpoint.
        out_dir (str): Output folder (created if missing).
        name (str, optional): The model's name; defaults to the config's.
        fp16 (bool): Store floating-point weights as float16.
        cfg_options (dict, optional): Overrides of the stage config.

    Returns:
        dict: ``checkpoint`` (``<name>-<sha8>.pth``), ``config``
        (``<name>.py``), ``sha256`` (of the published checkpoint) and the
        capacity (see :func:`model_capacity`).

    Raises:
        PublishError: When the stage model has no deployable detector.
        DeployError: When a wrapper's part is no model config.
        FileNotFoundError: Naming a missing config or checkpoint.
        CheckpointError: Naming the checkpoint when it is damaged or its
            weights do not fit the config's model (see
            :func:`~mmcast.deploy.loading.extract_weights`).
    """
    stage_cfg = read_config(config, cfg_options)
    name = name or osp.splitext(osp.basename(config))[0]
    detector, prefix = deployable_part(stage_cfg.model.to_dict())
    cfg = published_config(stage_cfg, published_model_cfg(detector))
    model, stage_ckpt = load_student(cfg.model, checkpoint, prefix)
    weights = model.state_dict()
    if fp16:
        weights = OrderedDict(
            (k, v.half() if v.is_floating_point() else v)
            for k, v in weights.items())
    source_meta = stage_ckpt.get('meta') or {}
    meta = dict(
        dataset_meta=dataset_meta(stage_ckpt, stage_cfg),
        **model_capacity(cfg.model),
        cfg=cfg.pretty_text,
        source_checkpoint=osp.basename(checkpoint),
        source_sha256=file_sha256(checkpoint, use_cache=False),
        source_part=prefix.rstrip('.') or 'model',
        iter=source_meta.get('iter'),
        epoch=source_meta.get('epoch'),
        fp16=fp16)
    buffer = io.BytesIO()
    torch.save(dict(state_dict=weights, meta=_plain(meta)), buffer)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    out_ckpt = osp.join(out_dir, f'{name}-{sha[:8]}.pth')
    out_cfg = osp.join(out_dir, f'{name}.py')
    with atomic_open(out_ckpt, 'wb') as f:
        f.write(data)
    with atomic_open(out_cfg, 'w', encoding='utf-8') as f:
        f.write(cfg.pretty_text)
    return dict(checkpoint=out_ckpt, config=out_cfg, sha256=sha,
                **model_capacity(cfg.model))
