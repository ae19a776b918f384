# Copyright (c) mmcast contributors. All rights reserved.
"""Running the CAST stages: their state, their progress, their failures."""
from .stage_failure import StageFailed, last_exception
from .stage_progress import ProgressMonitor, StageProgress
from .stage_state import (COMPLETION_FILE, CRASHED, FINAL_EVAL, FINISHED, NEW,
                          last_checkpoint, logged_metrics, read_completion,
                          set_aside, stage_status, write_completion)

__all__ = [
    'StageFailed', 'last_exception', 'ProgressMonitor', 'StageProgress',
    'COMPLETION_FILE', 'CRASHED', 'FINAL_EVAL', 'FINISHED', 'NEW',
    'last_checkpoint', 'logged_metrics', 'read_completion', 'set_aside',
    'stage_status', 'write_completion'
]
