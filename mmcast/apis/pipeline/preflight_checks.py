# Copyright (c) mmcast contributors. All rights reserved.
"""Checks of every stage before the first one starts (configs, data, disk)."""
import os
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from mmcast.utils.stage_state import FINISHED, stage_status
from .batch_plan import batch_problems
from .config_loader import ConfigLoader
from .cpu_share import busy_cpus, cpu_contention_note
from .planning import Plan
from .run_spec import RunSpec
from .settings import CHECKPOINT_BYTES_PER_WEIGHT, REPO_ROOT


@dataclass
class PreflightReport:
    """What the preflight found.

    Args:
        problems (list[str]): One line each; none: the stages may start.
        checkpoint_bytes (dict): ``{stage work dir: bytes}``: the
            checkpoints each stage to train keeps (checked again before the
            stage starts: another program may fill the disk meanwhile).
        image_counts (dict): ``{annotation file (absolute): images}``.
    """
    problems: List[str] = field(default_factory=list)
    checkpoint_bytes: Dict[str, int] = field(default_factory=dict)
    image_counts: Dict[str, int] = field(default_factory=dict)


def run_preflight(spec: RunSpec, loader: ConfigLoader, plan: Plan,
                  made_here: Sequence[str] = (),
                  set_aside: Sequence[str] = ()) -> PreflightReport:
    """Check every file the stages read, the batch of each stage and the
    room for their checkpoints; print the notes.

    Runs from the repository root with the stages' environment, as the
    stages do. Missing files under the work dir, ``made_here`` (and, on toy,
    the data the pipeline generates) are made by earlier stages or the
    pipeline; ``set_aside`` (damaged checkpoints of the work dir the run
    moves away) count as missing.
    """
    from mmdet.utils import register_all_modules

    import mmcast  # noqa: F401  (registers mmcast modules)
    from mmcast.apis.preflight import Preflight

    warnings.filterwarnings('ignore', 'pkg_resources is deprecated')
    register_all_modules(init_default_scope=False)
    made_here = [spec.work_dir] + list(made_here)
    if spec.dataset == 'toy':
        made_here += [spec.toy.root, spec.toy.source_root]
    check = Preflight(made_here, set_aside=set_aside)
    report = PreflightReport()
    to_train = []
    cwd = os.getcwd()
    os.chdir(REPO_ROOT)
    try:
        for stage in plan.stages:
            try:
                cfg = loader.load(stage)
            except Exception as e:  # noqa: BLE001 - reported as a line
                check.problems.append(
                    f'{stage.config}: cannot be loaded with the pipeline\'s '
                    f'options ({type(e).__name__}: {e})')
                continue
            with loader.stage_environment():
                check.check_stage(cfg, f'{stage.name} ({stage.config})',
                                  stage.checkpoint)
            if stage.max_iters is not None and stage_status(
                    stage.work_dir, stage.max_iters) != FINISHED:
                to_train.append((stage, cfg))
        # the estimate builds every model: only worth it when the rest is
        # in order
        if not check.problems:
            for stage, cfg in to_train:
                report.checkpoint_bytes[stage.work_dir] = \
                    _checkpoint_bytes(check, cfg)
    finally:
        os.chdir(cwd)
    check.check_work_dir(spec.work_dir, sum(report.checkpoint_bytes.values()))
    report.image_counts = dict(check.image_counts)
    contention = _cpu_contention_note(spec)
    for note in check.notes + ([contention] if contention else []):
        print(f'note: {note}', flush=True)
    report.problems = check.problems + batch_problems(plan.stages)
    return report


def _cpu_contention_note(spec: RunSpec) -> Optional[str]:
    """On a machine without CUDA, a note when the stages' threads would
    oversubscribe CPUs other programs keep busy
    (:func:`~mmcast.apis.pipeline.cpu_share.cpu_contention_note`)."""
    import torch

    launch = spec.launch
    if torch.cuda.is_available() or launch.launcher == 'slurm':
        return None
    busy = busy_cpus()
    # torchrun gives each process one thread unless told otherwise
    threads = spec.env.get('OMP_NUM_THREADS') or (
        '1' if launch.launcher == 'pytorch' else None)
    return None if busy is None else cpu_contention_note(
        busy, os.cpu_count() or 1, spec.jobs * launch.nproc, threads)


def _checkpoint_bytes(check, cfg) -> int:
    """The bytes of the checkpoints a training stage keeps (``0``: no
    estimate)."""
    hook = cfg.get('default_hooks', {}).get('checkpoint') or {}
    kept = hook.get('max_keep_ckpts', -1)
    kept = 4 if kept is None or kept < 0 else min(kept, 4)
    kept += bool(hook.get('save_last', True))
    try:
        weights = check.num_weights(cfg.model)
    except Exception:  # noqa: BLE001 - no estimate for this stage
        return 0
    return kept * weights * CHECKPOINT_BYTES_PER_WEIGHT
