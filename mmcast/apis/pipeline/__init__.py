# Copyright (c) mmcast contributors. All rights reserved.
"""The CAST pipeline as a library: the stage graph of a dataset
(:mod:`.planning`), the data it prepares, the preflight, the runner
(:mod:`.scheduling`, :mod:`.launching`: local processes, ``torchrun``,
Slurm), reuse of finished stages and the results table
(:mod:`mmcast.evaluation.results_table`). ``tools/cast_pipeline.py`` is its
command line; :func:`run_pipeline` runs it from Python::

    from mmcast.apis.pipeline import run_pipeline
    results = run_pipeline('toy', 'work_dirs/cast_toy', '--seeds', '0')
"""
from .cast_pipeline import CASTPipeline
from .cli import main, quiet_console, run_pipeline
from .options import parse_args
from .settings import (GD_CONFIGS, PREFLIGHT_FAILED, REPO_ROOT, TEACHERS,
                       WORK_DIR_BUSY, config_path)
from .stage import Stage, read_metrics
from .work_dir_lock import FolderBusy, FolderLock

__all__ = [
    'CASTPipeline', 'main', 'quiet_console', 'run_pipeline', 'parse_args',
    'GD_CONFIGS', 'PREFLIGHT_FAILED', 'REPO_ROOT', 'TEACHERS', 'config_path',
    'Stage', 'read_metrics', 'WORK_DIR_BUSY', 'FolderBusy', 'FolderLock'
]
