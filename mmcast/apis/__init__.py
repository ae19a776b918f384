# Copyright (c) mmcast contributors. All rights reserved.
"""Running the CAST stages (their state, progress, failures and the
options handed to their configs) and the trained models (faster eager
inference, ONNX Runtime, .pt2 packages). A stage's state (finished, crashed,
its checkpoints) is :mod:`mmcast.utils.stage_state`, named here too."""
from mmcast.utils.stage_state import (COMPLETION_FILE, CRASHED, FINAL_EVAL,
                                      FINISHED, NEW, last_checkpoint,
                                      logged_metrics, read_completion,
                                      set_aside, stage_status,
                                      write_completion)
from .config_handoffs import (ConfigHandoffError, config_value,
                              evaluator_options, find_item, hook_option,
                              pseudo_label_options, train_dataset_key)
from .inference_speedups import (FusedMultiheadAttention, fuse_attention,
                                 inference_autocast, prepare_for_inference)
from .onnx_inferencer import ONNXInferencer
from .pt2_inferencer import PT2Inferencer
from .pipeline import CASTPipeline, run_pipeline
from .stage_failure import StageFailed, last_exception
from .stage_progress import ProgressMonitor, StageProgress

__all__ = [
    'ONNXInferencer', 'PT2Inferencer', 'StageFailed', 'last_exception',
    'ProgressMonitor', 'StageProgress',
    'COMPLETION_FILE', 'CRASHED', 'FINAL_EVAL', 'FINISHED', 'NEW',
    'last_checkpoint', 'logged_metrics', 'read_completion', 'set_aside',
    'stage_status', 'write_completion', 'FusedMultiheadAttention',
    'fuse_attention', 'inference_autocast', 'prepare_for_inference',
    'ConfigHandoffError', 'config_value', 'evaluator_options', 'find_item',
    'hook_option', 'pseudo_label_options', 'train_dataset_key',
    'CASTPipeline', 'run_pipeline'
]
