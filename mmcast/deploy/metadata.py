# Copyright (c) mmcast contributors. All rights reserved.
"""What an exported ONNX model carries besides its graph.

The exported network (:func:`mmcast.deploy.export_onnx`) maps a padded
float32 image batch to Mask2Former's logits; everything the runtime needs
around it (how the test pipeline loads and resizes an image, how the batch
is padded, the class names, how many instances are kept: ``num_queries``,
``max_per_image`` and the ``capacity``, the fewer of the two) is stored in
the model's ``metadata_props``, one JSON value per key, and read back with
:func:`decode_metadata` (from ``onnx.ModelProto.metadata_props`` or
``onnxruntime.InferenceSession.get_modelmeta().custom_metadata_map``).
This module needs neither ``onnx`` nor ``onnxruntime``.
"""
import json
from typing import Any, Dict, List, Optional

from mmcast.utils.config_types import type_name_of

FORMAT = 'mmcast-mask2former-instance/1'
INPUT_NAME = 'images'
OUTPUT_NAMES = ('cls_logits', 'mask_logits')
# Keys every exported model holds (besides provenance keys that may be
# null): see :func:`mmcast.deploy.onnx_export.export_onnx`.
REQUIRED_KEYS = ('format', 'classes', 'num_things_classes', 'max_per_image',
                 'pad_size_divisor', 'pad_value', 'input_channel_order',
                 'input_shape', 'load_image', 'resize')
# Pipeline steps that do not change the image the network sees.
IGNORED_TRANSFORMS = ('LoadAnnotations', 'LoadPanopticAnnotations',
                      'PackDetInputs', 'FilterAnnotations')
LOAD_TRANSFORMS = ('LoadImageFromFile', 'LoadImageFromNDArray')


class DeployError(ValueError):
    """An input that cannot be exported or run; the message names it."""


def _pair(value: Any, name: str, where: str) -> Optional[List[float]]:
    """An int/float or a pair of them as a 2-list (None stays None)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value, value]
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return list(value)
    raise DeployError(f'{where}: Resize.{name}={value!r} is neither a number '
                      'nor a pair')


def pipeline_settings(pipeline: List[dict], where: str) -> Dict[str, Any]:
    """How a test pipeline turns an image file into the network's input.

    Args:
        pipeline (list[dict]): The test pipeline's transforms.
        where (str): The config it comes from, for messages.

    Returns:
        dict: ``load_image`` (``color_type``, ``imdecode_backend``) and
        ``resize`` (``None``, or ``scale`` (w, h) / ``scale_factor``
        (w, h), ``keep_ratio``, ``interpolation``, ``backend``: the
        arguments of mmcv's ``imrescale`` / ``imresize``).

    Raises:
        DeployError: For a transform that changes the image in a way the
            runtime does not reproduce (e.g. ``TestTimeAug``, ``Pad``) or a
            second ``Resize``.
    """
    load = dict(color_type='color', imdecode_backend='cv2')
    resize = None
    for step in pipeline:
        name = type_name_of(step)
        if name in LOAD_TRANSFORMS:
            load.update({k: step[k] for k in load if k in step})
        elif name == 'Resize':
            if resize is not None:
                raise DeployError(f'{where}: the test pipeline resizes '
                                  'twice; the ONNX runtime resizes once')
            scale = _pair(step.get('scale'), 'scale', where)
            factor = _pair(step.get('scale_factor'), 'scale_factor', where)
            if scale is None and factor is None:
                raise DeployError(f'{where}: Resize needs scale or '
                                  'scale_factor')
            resize = dict(
                scale=scale,
                scale_factor=None if scale else factor,
                keep_ratio=bool(step.get('keep_ratio', False)),
                interpolation=step.get('interpolation', 'bilinear'),
                backend=step.get('backend', 'cv2'))
        elif name not in IGNORED_TRANSFORMS:
            raise DeployError(
                f'{where}: test pipeline step {name!r} is not reproduced by '
                f'the ONNX runtime (it knows {LOAD_TRANSFORMS}, Resize and '
                f'the image-neutral {IGNORED_TRANSFORMS})')
    return dict(load_image=load, resize=resize)


def encode_metadata(meta: Dict[str, Any]) -> Dict[str, str]:
    """``metadata_props`` entries: each value as JSON text."""
    return {str(k): json.dumps(v) for k, v in meta.items()}


def decode_metadata(props: Dict[str, str], where: str) -> Dict[str, Any]:
    """The metadata of an exported model, values decoded.

    Args:
        props (dict[str, str]): The model's ``metadata_props``.
        where (str): The model file, for messages.

    Raises:
        DeployError: For a model that :func:`export_onnx` did not write or
            whose metadata lacks a key.
    """
    if 'format' not in props:
        raise DeployError(
            f'{where}: no mmcast metadata (key "format"): export the model '
            'with tools/deploy/export_onnx.py')
    try:
        meta = {k: json.loads(v) for k, v in props.items()}
    except json.JSONDecodeError as e:
        raise DeployError(f'{where}: damaged metadata ({e})') from e
    if meta['format'] != FORMAT:
        raise DeployError(f'{where}: metadata format {meta["format"]!r}, '
                          f'this mmcast reads {FORMAT!r}')
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise DeployError(f'{where}: metadata key {missing[0]!r} missing')
    return meta
