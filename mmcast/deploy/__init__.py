# Copyright (c) mmcast contributors. All rights reserved.
"""Deploy a published student: ONNX export and the metadata it carries.

``onnx`` is imported only when exporting; reading the metadata needs
neither ``onnx`` nor ``onnxruntime``.
"""
from .loading import load_mask2former, raw_pad_value, runtime_metadata
from .metadata import (FORMAT, INPUT_NAME, OUTPUT_NAMES, DeployError,
                       decode_metadata, encode_metadata, pipeline_settings)
from .onnx_export import Mask2FormerONNXWrapper, export_onnx

__all__ = [
    'FORMAT', 'INPUT_NAME', 'OUTPUT_NAMES', 'DeployError', 'decode_metadata',
    'encode_metadata', 'pipeline_settings', 'load_mask2former',
    'raw_pad_value', 'runtime_metadata', 'Mask2FormerONNXWrapper',
    'export_onnx'
]
