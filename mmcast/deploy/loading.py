# Copyright (c) mmcast contributors. All rights reserved.
"""Build a config's Mask2Former with its checkpoint for export, and the
runtime settings (:mod:`.metadata`) stored with the exported graph."""
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from mmengine.config import Config
from torch import nn

from mmcast.utils.checkpoint_loading import (CheckpointError,
                                             check_weights_fit,
                                             load_checkpoint_file,
                                             state_dict_of)
from mmcast.utils.file_hashing import file_sha256
from .metadata import FORMAT, DeployError, pipeline_settings


def raw_pad_value(preprocessor: nn.Module) -> List[float]:
    """The 0-255 pixel, in the input (BGR) channel order, that a
    ``DetDataPreprocessor`` normalises to its ``pad_value``: padding the
    raw image with it equals padding the normalised one with
    ``pad_value``."""
    pad = float(getattr(preprocessor, 'pad_value', 0))
    if not getattr(preprocessor, '_enable_normalize', False):
        return [pad] * 3
    value = (preprocessor.mean + pad * preprocessor.std).flatten().tolist()
    if getattr(preprocessor, '_channel_conversion', False):
        value = value[::-1]
    return [round(v, 6) for v in value]


def load_mask2former(config: Union[str, Config], checkpoint: str,
                     cfg_options: Optional[dict] = None
                     ) -> Tuple[nn.Module, Config, dict]:
    """Build a config's Mask2Former and load a checkpoint into it (safely,
    ``weights_only=True``).

    Returns:
        tuple: The model in eval mode, the config and the checkpoint.

    Raises:
        FileNotFoundError: Naming a missing config or checkpoint.
        DeployError: Naming the config when its model is no Mask2Former.
        CheckpointError: Naming the checkpoint when it is damaged, of
            another architecture or lacks a weight of the model.
    """
    from mmdet.models import Mask2Former, Mask2FormerHead
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.registry import init_default_scope
    name = config if isinstance(config, str) else config.filename
    if isinstance(config, str):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config not found: {config}')
        config = Config.fromfile(config)
    if cfg_options:
        config.merge_from_dict(cfg_options)
    register_all_modules(init_default_scope=False)
    init_default_scope(config.get('default_scope', 'mmdet'))
    model_cfg = config.get('model') or {}
    type_ = model_cfg.get('type')
    cls = MODELS.get(type_) if isinstance(type_, str) else type_
    if not (isinstance(cls, type) and issubclass(cls, Mask2Former)):
        raise DeployError(
            f'{name}: model.type={type_!r} is not a Mask2Former; export the '
            'model that tools/publish_model.py publishes from a stage '
            'config')
    ckpt = load_checkpoint_file(checkpoint)
    model = MODELS.build(model_cfg)
    if not isinstance(model.panoptic_head, Mask2FormerHead):
        raise DeployError(f'{name}: model.panoptic_head is a '
                          f'{type(model.panoptic_head).__name__}, not a '
                          'Mask2FormerHead')
    check_weights_fit(checkpoint, model, ckpt)
    state = state_dict_of(ckpt)
    missing = [k for k in model.state_dict() if k not in state]
    if missing:
        raise CheckpointError(
            f'{checkpoint}: {len(missing)} weight(s) of the model of {name} '
            f'are not in it (e.g. {missing[0]})')
    model.load_state_dict(state, strict=False)
    return model.eval(), config, ckpt


def runtime_metadata(model: nn.Module, cfg: Config, ckpt: dict,
                     checkpoint: str, input_shape: Optional[Sequence[int]],
                     where: str) -> Dict[str, Any]:
    """The runtime settings stored with the graph (see :mod:`.metadata`)."""
    from mmdet.registry import DATASETS
    data_cfg = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    pipeline = data_cfg.get('pipeline') or cfg.get('test_pipeline')
    if not pipeline:
        raise DeployError(f'{where}: no test_dataloader.dataset.pipeline or '
                          'test_pipeline: the image resize is unknown')
    meta = dict((ckpt.get('meta') or {}).get('dataset_meta') or {})
    if not meta.get('classes'):
        meta = dict(data_cfg.get('metainfo') or {})
    if not meta.get('classes') and isinstance(data_cfg.get('type'), str):
        meta = dict(getattr(DATASETS.get(data_cfg['type']), 'METAINFO', {}))
    fusion = model.panoptic_fusion_head
    num_classes = fusion.num_things_classes + fusion.num_stuff_classes
    classes = list(meta.get('classes') or
                   [f'class_{i}' for i in range(num_classes)])
    if len(classes) != num_classes:
        raise DeployError(
            f'{checkpoint}: its dataset_meta names {len(classes)} classes '
            f'but the model of {where} predicts {num_classes}')
    source = ckpt.get('meta') or {}
    test_cfg = model.test_cfg or {}
    return dict(
        format=FORMAT,
        classes=classes,
        palette=[list(c) for c in meta['palette']]
        if meta.get('palette') else None,
        num_things_classes=fusion.num_things_classes,
        num_queries=model.panoptic_head.num_queries,
        max_per_image=int(test_cfg.get('max_per_image', 100)),
        capacity=min(model.panoptic_head.num_queries,
                     int(test_cfg.get('max_per_image', 100))),
        pad_size_divisor=int(model.data_preprocessor.pad_size_divisor),
        pad_value=raw_pad_value(model.data_preprocessor),
        input_channel_order='bgr',
        input_shape=list(input_shape) if input_shape else None,
        **pipeline_settings(list(pipeline), where),
        checkpoint=osp.basename(checkpoint),
        checkpoint_sha256=file_sha256(checkpoint, use_cache=False),
        source_checkpoint=source.get('source_checkpoint'),
        source_sha256=source.get('source_sha256'),
        model_type=type(model).__name__)
