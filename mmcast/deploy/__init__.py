# Copyright (c) mmcast contributors. All rights reserved.
"""Deploy a student: publish it from a stage checkpoint as a stock
MMDetection model, export it to ONNX with the metadata it carries, the
static one-graph predict and its ``.pt2`` package (of a Mask2Former or the
EoMT student); run the exports
(:class:`ONNXInferencer`, :class:`PT2Inferencer`) and the eager model
faster (:func:`prepare_for_inference`, :func:`inference_autocast`).

``onnx`` is imported only when exporting and ``onnxruntime`` only when an
ONNX model is run; reading the metadata needs neither.
"""
from .half_precision import cast_network
from .inference_speedups import (fuse_attention, inference_autocast,
                                 prepare_for_inference)
from .loading import load_mask2former, raw_pad_value, runtime_metadata
from .metadata import (FORMAT, INPUT_NAME, OUTPUT_NAMES, DeployError,
                       decode_metadata, encode_metadata, pipeline_settings)
from .onnx_export import Mask2FormerONNXWrapper, export_onnx
from .onnx_inferencer import ONNXInferencer
from .packed_masks import MASK_FORMATS, pack_masks, unpack_masks
from .pt2_inferencer import PT2Inferencer
from .pt2_package import (PT2_FORMAT, export_pt2, load_pt2,
                          read_pt2_metadata)
from .publish import PublishError, publish
from .static_eomt import StaticEoMTPredictor, final_logits
from .static_predict import (STATIC_INPUTS, STATIC_OUTPUTS,
                             StaticMask2FormerPredictor,
                             build_static_predictor, compile_predictor,
                             finish_instances)

__all__ = [
    'FORMAT', 'INPUT_NAME', 'OUTPUT_NAMES', 'DeployError', 'decode_metadata',
    'encode_metadata', 'pipeline_settings', 'load_mask2former',
    'raw_pad_value', 'runtime_metadata', 'Mask2FormerONNXWrapper',
    'export_onnx', 'MASK_FORMATS', 'pack_masks', 'unpack_masks',
    'PT2_FORMAT', 'export_pt2', 'load_pt2',
    'read_pt2_metadata', 'STATIC_INPUTS', 'STATIC_OUTPUTS',
    'StaticMask2FormerPredictor', 'build_static_predictor', 'cast_network',
    'compile_predictor', 'finish_instances', 'PublishError', 'publish',
    'ONNXInferencer', 'PT2Inferencer', 'fuse_attention', 'inference_autocast',
    'prepare_for_inference', 'StaticEoMTPredictor', 'final_logits'
]
