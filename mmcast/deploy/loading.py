# Copyright (c) mmcast contributors. All rights reserved.
"""Load a student: the detector that a config's model predicts with, its
weights taken from a checkpoint of that model and checked to fit; and the
runtime settings (:mod:`.metadata`) stored with an exported graph.

:func:`load_student` is the one loader: exporting (:func:`load_mask2former`),
publishing (:func:`mmcast.deploy.publish`) and drawing a stage's
predictions (``tools/analysis/show_predictions.py``) build their model with
it.
"""
import copy
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from mmengine.config import Config
from torch import Tensor, nn

from mmcast.utils.checkpoint_loading import (CheckpointError,
                                             check_weights_fit,
                                             load_checkpoint_file,
                                             state_dict_of)
from mmcast.utils.config_reading import read_config
from mmcast.utils.config_types import type_name_of
from mmcast.utils.file_hashing import file_sha256
from .metadata import FORMAT, DeployError, pipeline_settings

# Teacher–student wrappers: their checkpoints hold the student under
# ``student.`` (and the teacher under ``teacher.``).
WRAPPERS = ('CASTDistiller', 'GuidedDistiller')
# Training-only parts of a CASTMask2Former (and of an EoMTStudent, whose
# L_pxl parts are the detector's own), relative to the detector: a stage
# checkpoint may hold them where the loaded model has none.
TRAINING_ONLY = ('strong_view.', 'panoptic_head.projection_head.',
                 'panoptic_head.loss_pixel_contrast.', 'projection_head.',
                 'loss_pixel_contrast.')


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


def _model_of(part: Any, key: str) -> dict:
    """A wrapper's ``student``/``teacher`` (a model dict or a config file
    whose ``model`` it is; of a ``CASTDistiller`` its student, as
    ``build_frozen_teacher`` reads it)."""
    if isinstance(part, str):
        part = Config.fromfile(part).model.to_dict()
    if not isinstance(part, dict):
        raise DeployError(f'model.{key} must be a model config or a config '
                          f'file, got {part!r:.80}')
    if type_name_of(part) == 'CASTDistiller':  # a stage-1b teacher
        part = part['student']
    return copy.deepcopy(dict(part))


def student_part(model_cfg: dict) -> Tuple[dict, str]:
    """The detector that ``predict`` of a config's model runs, and the
    prefix of its weights in that model's checkpoints.

    Args:
        model_cfg (dict): A config's ``model``.

    Returns:
        tuple[dict, str]: A detector's own config and ``''``; for a wrapper
        (:data:`WRAPPERS`) the config of the part it predicts with (its
        student, or what ``GuidedDistiller``'s
        ``semi_test_cfg.predict_on`` names), with the data preprocessor
        that the wrapper applies at test time, and ``'student.'`` (or
        ``'teacher.'``).

    Raises:
        DeployError: When the wrapper's part is neither a model config nor
            a config file.
    """
    type_ = type_name_of(model_cfg)
    if type_ not in WRAPPERS:
        return copy.deepcopy(dict(model_cfg)), ''
    part = 'student'
    if type_ == 'GuidedDistiller':
        part = (model_cfg.get('semi_test_cfg') or {}).get(
            'predict_on', 'student')
    detector = _model_of(model_cfg.get(part), part)
    preprocessor = model_cfg.get('data_preprocessor')
    if preprocessor and type_name_of(preprocessor) == \
            'MultiBranchDataPreprocessor':
        preprocessor = preprocessor.get('data_preprocessor')
    if preprocessor:  # what the wrapper runs before predict
        detector['data_preprocessor'] = copy.deepcopy(dict(preprocessor))
    return detector, f'{part}.'


def extract_weights(path: str, checkpoint: dict, prefix: str,
                    model: nn.Module) -> 'OrderedDict[str, Tensor]':
    """The weights of ``model`` in a checkpoint, prefix stripped.

    Args:
        path (str): The checkpoint's path, for messages.
        checkpoint (dict): The checkpoint.
        prefix (str): Where the model's keys live (see
            :func:`student_part`).
        model (nn.Module): The model to load.

    Returns:
        OrderedDict[str, Tensor]: Exactly the keys of ``model.state_dict()``.

    Raises:
        CheckpointError: Naming ``path`` and a key when a weight of the
            model is missing, has another shape, or the part holds a weight
            that is neither the model's nor a known training-only one.
    """
    state = state_dict_of(checkpoint)
    part = OrderedDict((k[len(prefix):], v) for k, v in state.items()
                       if k.startswith(prefix))
    if not part:
        example = next(iter(state), None)
        raise CheckpointError(
            f'{path}: no weight starts with {prefix!r} (the stage config\'s '
            f'deployable model); it holds {len(state)} entries, e.g. '
            f'{example!r}: was it trained with this config?')
    check_weights_fit(path, model, dict(state_dict=part))
    expected = model.state_dict()
    missing = [k for k in expected if k not in part]
    unknown = [k for k in part
               if k not in expected and not k.startswith(TRAINING_ONLY)]
    name = type(model).__name__
    if missing:
        raise CheckpointError(
            f'{path}: {len(missing)} weight(s) of the config\'s {name} are '
            f'not in it (e.g. {prefix}{missing[0]}): weights of another '
            'architecture than the config\'s')
    if unknown:
        raise CheckpointError(
            f'{path}: {len(unknown)} of its weight(s) have no place in the '
            f'config\'s {name} (e.g. {prefix}{unknown[0]}): weights of '
            'another architecture than the config\'s')
    return OrderedDict((k, part[k]) for k in expected)


def load_student(model_cfg: dict, checkpoint: str,
                 prefix: str = '') -> Tuple[nn.Module, dict]:
    """Build a detector and load its weights from a checkpoint, safely
    (``weights_only=True``) and checked to fit (:func:`extract_weights`).

    Args:
        model_cfg (dict): The detector's config (a stage's: see
            :func:`student_part`).
        checkpoint (str): The checkpoint (a path, ``work-dir://`` or a URL,
            see :func:`~mmcast.utils.checkpoint_loading.load_checkpoint_file`).
        prefix (str): Where the detector's weights are in it: ``''`` for a
            detector's own checkpoint, ``'student.'`` for a wrapper's.

    Returns:
        tuple: The detector in eval mode on the CPU, and the checkpoint.

    Raises:
        FileNotFoundError: Naming a missing checkpoint.
        CheckpointError: Naming the checkpoint when it is damaged or its
            weights do not fit the detector.
    """
    from mmdet.registry import MODELS
    model = MODELS.build(model_cfg)
    ckpt = load_checkpoint_file(checkpoint)
    model.load_state_dict(extract_weights(checkpoint, ckpt, prefix, model),
                          strict=True)
    return model.eval(), ckpt


def load_mask2former(config: Union[str, Config], checkpoint: str,
                     cfg_options: Optional[dict] = None
                     ) -> Tuple[nn.Module, Config, dict]:
    """Build a config's Mask2Former (or ``EoMTStudent``) and load a
    checkpoint into it (:func:`load_student`).

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

    from mmcast.models.detectors import EoMTStudent
    name = config if isinstance(config, str) else config.filename
    config = read_config(config, cfg_options)
    model_cfg = config.get('model') or {}
    type_ = model_cfg.get('type')
    cls = MODELS.get(type_) if isinstance(type_, str) else type_
    if not (isinstance(cls, type) and issubclass(
            cls, (Mask2Former, EoMTStudent))):
        raise DeployError(
            f'{name}: model.type={type_!r} is not a Mask2Former or an '
            'EoMTStudent; export the model that tools/publish_model.py '
            'publishes from a stage config')
    model, ckpt = load_student(model_cfg, checkpoint)
    if isinstance(model, EoMTStudent):
        return model, config, ckpt
    if not isinstance(model.panoptic_head, Mask2FormerHead):
        raise DeployError(f'{name}: model.panoptic_head is a '
                          f'{type(model.panoptic_head).__name__}, not a '
                          'Mask2FormerHead')
    return model, config, ckpt


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
    head = getattr(model, 'panoptic_head', model)  # EoMT: the detector
    num_queries = head.num_queries
    return dict(
        format=FORMAT,
        classes=classes,
        palette=[list(c) for c in meta['palette']]
        if meta.get('palette') else None,
        num_things_classes=fusion.num_things_classes,
        num_queries=num_queries,
        max_per_image=int(test_cfg.get('max_per_image', 100)),
        capacity=min(num_queries,
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
