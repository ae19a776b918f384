# Copyright (c) mmcast contributors. All rights reserved.
"""Running the CAST stages: the pipeline (:mod:`mmcast.apis.pipeline`: a
run's options, its stage graph, the checks before it, the stages' launch,
progress and failures, the results table). A stage's state (finished,
crashed, its checkpoints) is :mod:`mmcast.utils.stage_state`, named here
too. The trained models' inference and export are :mod:`mmcast.deploy`."""
from mmcast.utils.stage_state import (COMPLETION_FILE, CRASHED, FINAL_EVAL,
                                      FINISHED, NEW, last_checkpoint,
                                      logged_metrics, read_completion,
                                      set_aside, stage_status,
                                      write_completion)
from .pipeline import CASTPipeline, run_pipeline
from .pipeline.config_handoffs import (ConfigHandoffError, config_value,
                                       evaluator_options, find_item,
                                       hook_option, pseudo_label_options,
                                       train_dataset_key)
from .pipeline.stage_failure import StageFailed, last_exception
from .pipeline.stage_progress import ProgressMonitor, StageProgress

__all__ = [
    'StageFailed', 'last_exception', 'ProgressMonitor', 'StageProgress',
    'COMPLETION_FILE', 'CRASHED', 'FINAL_EVAL', 'FINISHED', 'NEW',
    'last_checkpoint', 'logged_metrics', 'read_completion', 'set_aside',
    'stage_status', 'write_completion', 'ConfigHandoffError', 'config_value',
    'evaluator_options', 'find_item', 'hook_option', 'pseudo_label_options',
    'train_dataset_key', 'CASTPipeline', 'run_pipeline'
]
