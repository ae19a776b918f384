# Copyright (c) mmcast contributors. All rights reserved.
"""Checks of every stage before the first one starts (configs, data, disk)."""
import os
import warnings
from typing import List, Optional

from ..stage_state import FINISHED, stage_status
from .cpu_share import busy_cpus, cpu_contention_note
from .settings import CHECKPOINT_BYTES_PER_WEIGHT, REPO_ROOT
from .stage import Stage


class PreflightChecks:
    """Checks of every stage before the first one starts (configs, data, disk).

    A part of :class:`~mmcast.apis.pipeline.CASTPipeline`; it uses the
    attributes that class sets.
    """

    def preflight(self, stages: List[Stage]) -> List[str]:
        """Check every file the stages read; return the problems.

        Runs from the repository root with the stages' environment, as the
        stages do. Missing files under the work dir (and, on toy, the data
        the pipeline generates) are made by earlier stages.
        """
        from mmdet.utils import register_all_modules

        import mmcast  # noqa: F401  (registers mmcast modules)
        from mmcast.utils.preflight import Preflight

        warnings.filterwarnings('ignore', 'pkg_resources is deprecated')
        register_all_modules(init_default_scope=False)
        made_here = [self.work_dir] + self.made_here
        if self.ds == 'toy':
            made_here += [self.toy_root, self.toy_source_root]
        check = Preflight(made_here, set_aside=self.damaged)
        to_train = []
        cwd = os.getcwd()
        os.chdir(REPO_ROOT)
        try:
            for stage in stages:
                try:
                    cfg = self.load_config(stage)
                except Exception as e:  # noqa: BLE001 - reported as a line
                    check.problems.append(
                        f'{stage.config}: cannot be loaded with the '
                        f'pipeline\'s options ({type(e).__name__}: {e})')
                    continue
                with self.stage_environment():
                    check.check_stage(cfg, f'{stage.name} ({stage.config})',
                                      stage.checkpoint)
                if stage.max_iters is not None and stage_status(
                        stage.work_dir, stage.max_iters) != FINISHED:
                    to_train.append((stage, cfg))
            # the estimate builds every model: only worth it when the rest
            # is in order; each stage checks its own share again before it
            # starts (another program may fill the disk meanwhile)
            if not check.problems:
                for stage, cfg in to_train:
                    self.checkpoint_bytes[stage.work_dir] = \
                        self._checkpoint_bytes(check, cfg)
            need = sum(self.checkpoint_bytes.values())
        finally:
            os.chdir(cwd)
        check.check_work_dir(self.work_dir, need)
        self.image_counts.update(check.image_counts)
        contention = self._cpu_contention_note()
        for note in check.notes + ([contention] if contention else []):
            print(f'note: {note}', flush=True)
        return check.problems

    def _cpu_contention_note(self) -> Optional[str]:
        """On a machine without CUDA, a note when the stages' threads would
        oversubscribe CPUs other programs keep busy
        (:func:`~mmcast.apis.pipeline.cpu_share.cpu_contention_note`)."""
        import torch

        if torch.cuda.is_available() or self.launch.launcher == 'slurm':
            return None
        busy = busy_cpus()
        # torchrun gives each process one thread unless told otherwise
        threads = self.env.get('OMP_NUM_THREADS') or (
            '1' if self.launch.launcher == 'pytorch' else None)
        return None if busy is None else cpu_contention_note(
            busy, os.cpu_count() or 1, self.args.jobs * self.launch.nproc,
            threads)

    @staticmethod
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
