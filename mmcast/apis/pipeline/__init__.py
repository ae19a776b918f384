# Copyright (c) mmcast contributors. All rights reserved.
"""The CAST pipeline as a library: a run's checked options
(:class:`RunSpec`), its configs (:class:`ConfigLoader`, the table of stage
configs), the stage graph (:class:`Planner` → :class:`Plan`), the data it
prepares, the preflight, the stages run (:class:`StageRunner`: local
processes, ``torchrun``, Slurm), reuse of finished stages and the results
table (:mod:`mmcast.evaluation.results_table`). ``tools/cast_pipeline.py``
is its command line; :func:`run_pipeline` runs it from Python::

    from mmcast.apis.pipeline import run_pipeline
    results = run_pipeline('toy', 'work_dirs/cast_toy', '--seeds', '0')
"""
from .cast_pipeline import CASTPipeline
from .cli import main, quiet_console, run_pipeline
from .config_loader import ConfigLoader
from .errors import PREFLIGHT_FAILED, PipelineError, PreflightFailed
from .options import parse_args
from .planning import Plan, Planner
from .run_spec import RunSpec
from .runner import StageRunner
from .settings import REPO_ROOT, TEACHERS, WORK_DIR_BUSY
from .stage import Stage, read_metrics
from .stage_table import find_row, stage_config_path, stage_rows
from .work_dir_lock import FolderBusy, FolderLock

__all__ = [
    'CASTPipeline', 'main', 'quiet_console', 'run_pipeline', 'ConfigLoader',
    'PREFLIGHT_FAILED', 'PipelineError', 'PreflightFailed', 'parse_args',
    'Plan', 'Planner', 'RunSpec', 'StageRunner', 'REPO_ROOT', 'TEACHERS',
    'WORK_DIR_BUSY', 'Stage', 'read_metrics', 'find_row',
    'stage_config_path', 'stage_rows', 'FolderBusy', 'FolderLock'
]
