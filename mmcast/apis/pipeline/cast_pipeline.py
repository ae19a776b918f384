# Copyright (c) mmcast contributors. All rights reserved.
"""The CAST pipeline of one dataset: plan, preflight, run, results table."""
import argparse
import glob
import json
import logging
import os
import os.path as osp
import shlex
import sys
from typing import Dict, List, Optional

from mmcast.evaluation import ROWS, claims_noise, write_results_table
from mmcast.utils.atomic_io import atomic_dump_json
from mmcast.utils.cpu_distributed import CPU_DIST_ENV
from ..launchers import LaunchConfig
from ..stage_progress import ProgressMonitor
from ..stage_state import (checkpoint_damage, iteration_checkpoints,
                           set_aside_checkpoint)
from .batch_plan import BatchPlanning
from .capacity import RunCapacity
from .data_preparation import DataPreparation, toy_extra_unlabeled
from .launching import StageLaunching
from .planning import StagePlanning
from .preflight_checks import PreflightChecks
from .reuse import StageReuse
from .scheduling import StageScheduling
from .settings import (CUSTOM_CLASSES_ENV, CUSTOM_DATASETS, CUSTOM_ENVS,
                       CUSTOM_PERCENT_ENV, CUSTOM_ROOT_ENV,
                       CUSTOM_SPLIT_SEED_ENV, DEFAULT_METRIC, DEFAULT_TEACHER,
                       METHODS, PREFLIGHT_FAILED, PRIMARY_METRIC, REPO_ROOT,
                       TEACHER_MARKER, TEACHERS, UPSTREAM)
from .stage import Stage
from .stage_configs import StageConfigs
from .work_dir_lock import WORK_DIR_LOCK, FolderLock, describe_holder


class CASTPipeline(StagePlanning, BatchPlanning, DataPreparation,
                   StageConfigs, PreflightChecks, StageReuse, StageScheduling,
                   StageLaunching, RunCapacity):
    """The stages of one dataset, run through stock MMDet entry points.

    Args:
        args (argparse.Namespace): The parsed command line (see
            :func:`parse_args`).
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ds = args.dataset
        self.teacher = args.teacher
        self.teacher_cfg = TEACHERS[args.teacher]
        self.work_dir = osp.abspath(args.work_dir)
        # The toy data: <data-root>/toy and <data-root>/toy_source.
        data_root = (osp.abspath(args.data_root)
                     if args.data_root else osp.join(REPO_ROOT, 'data'))
        self.toy_extra_unlabeled = toy_extra_unlabeled(args)
        if args.toy_world != 'streets' and self.ds != 'toy':
            raise SystemExit(f'--toy-world is for the toy data, not '
                             f'{self.ds}')
        world = ('' if args.toy_world == 'streets' else
                 f'_{args.toy_world}')
        self.toy_root = osp.join(data_root, f'toy{world}' + (
            f'_u{args.toy_unlabeled}' if self.toy_extra_unlabeled else ''))
        self.toy_source_root = osp.join(data_root, f'toy{world}_source')
        # The environment of every stage: the configs read the toy data root
        # (and the tiny teacher files) from it; without --data-root they get
        # their default, data/toy/.
        self.env = dict(os.environ)
        for name in ('MMCAST_TOY_ROOT', ) + CUSTOM_ENVS:
            self.env.pop(name, None)
        if args.student_init != 'random' and self.ds != 'toy':
            raise SystemExit(f'--student-init {args.student_init} is for the '
                             'toy data; the other datasets\' students have '
                             'their own pre-trained backbones (configs)')
        # --student-init source-pretrained: that model's final checkpoint
        self.student_backbone: Optional[str] = None
        if args.jobs < 1:
            raise SystemExit(f'--jobs {args.jobs}: at least 1')
        try:
            self.launch = LaunchConfig(
                launcher=args.launcher or (
                    'pytorch' if args.nproc * args.nnodes > 1 else 'none'),
                nproc=args.nproc, nnodes=args.nnodes,
                node_rank=args.node_rank, master_addr=args.master_addr,
                master_port=args.master_port, partition=args.partition,
                cpus_per_task=args.cpus_per_task,
                srun_args=shlex.split(args.srun_args))
        except ValueError as e:
            raise SystemExit(f'error: {e}')
        if self.launch.launcher == 'pytorch':
            import torch
            if not torch.cuda.is_available():  # gloo on a CPU machine
                self.env.setdefault(CPU_DIST_ENV, '1')
        if args.jobs > 1:  # the CPUs shared among the stages running
            self.env.setdefault('OMP_NUM_THREADS',
                                str(max(1, (os.cpu_count() or 1) // args.jobs)))
        self.custom = self.ds in CUSTOM_DATASETS
        for option in ('classes', 'percent', 'split_seed'):
            if getattr(args, option) is not None and not self.custom:
                raise SystemExit(
                    f'--{option.replace("_", "-")} is for your own dataset '
                    f'({" or ".join(CUSTOM_DATASETS)}), not {self.ds}')
        if args.percent is not None and not 0 < args.percent < 100:
            raise SystemExit(f'--percent {args.percent:g}: the labeled share '
                             'must be above 0 and below 100')
        if self.custom:
            if args.percent is not None:
                self.env[CUSTOM_PERCENT_ENV] = repr(args.percent)
            if args.split_seed is not None:
                self.env[CUSTOM_SPLIT_SEED_ENV] = repr(args.split_seed)
            # Python literals: custom_dataset.py substitutes them as code
            if args.data_root:
                self.env[CUSTOM_ROOT_ENV] = repr(data_root + '/')
            if args.classes:
                if len(set(args.classes)) != len(args.classes):
                    raise SystemExit(
                        f'--classes names a class twice: {args.classes}')
                self.env[CUSTOM_CLASSES_ENV] = repr(tuple(args.classes))
        elif (args.data_root or self.toy_extra_unlabeled
              or args.toy_world != 'streets'):
            self.env['MMCAST_TOY_ROOT'] = self.toy_root + '/'
        if self.teacher_cfg['tiny_assets']:
            self.env['MMCAST_TINY_TEACHERS'] = osp.join(
                self.work_dir, 'tiny_teachers')
        self.stage_options = self._parse_stage_options(
            args.stage_cfg_options)
        self.iters = self.parse_iters()
        # while the stages run: their progress, their processes
        self.monitor: Optional[ProgressMonitor] = None
        self._processes: set = set()
        # stages whose pseudo-label counts were shown
        self.pseudo_labels_told: set = set()
        self._configs: Dict[str, object] = {}  # config files, as loaded
        # files the pipeline writes before the stages (not yet on a dry run)
        self.made_here: List[str] = []
        # its own damaged checkpoints, set aside before the preflight
        self.damaged: List[str] = []
        # the bytes of the checkpoints each stage to train keeps (preflight)
        self.checkpoint_bytes: Dict[str, int] = {}
        # images of each annotation file the preflight read
        self.image_counts: Dict[str, int] = {}
        self.lock = FolderLock(self.work_dir, WORK_DIR_LOCK)

    @staticmethod
    def log_to(path: str) -> None:
        """Append the config loader's messages and Python's warnings (all
        that :func:`quiet_console` keeps off the console) to ``path``."""
        from mmengine.logging import MMLogger

        handler = logging.FileHandler(path, encoding='utf-8')
        handler.setFormatter(logging.Formatter(
            '%(asctime)s %(name)s %(levelname)s: %(message)s'))
        for logger in (MMLogger.get_instance('mmengine'),
                       logging.getLogger('py.warnings')):
            logger.addHandler(handler)

    @staticmethod
    def _parse_stage_options(items: List[str]) -> Dict[str, List[str]]:
        """``STAGE:KEY=VALUE`` items → the ``KEY=VALUE`` list of each stage."""
        options: Dict[str, List[str]] = {}
        for item in items:
            stage, sep, option = item.partition(':')
            if not sep or '=' not in option or stage not in UPSTREAM:
                raise SystemExit(
                    f'--stage-cfg-options {item!r}: expected STAGE:KEY=VALUE '
                    f'with STAGE one of {", ".join(UPSTREAM)}')
            options.setdefault(stage, []).append(option)
        return options

    def _check_work_dir_teacher(self) -> None:
        """Refuse a work dir made with another teacher.

        The stage folders have the same names for every teacher, so a
        finished stage of another teacher would be taken as done. A work dir
        without the record but with stages predates ``--teacher``: it holds
        the default teacher's.
        """
        marker = osp.join(self.work_dir, TEACHER_MARKER)
        if osp.isfile(marker):
            with open(marker, encoding='utf-8') as f:
                previous = json.load(f).get('teacher')
        elif glob.glob(osp.join(self.work_dir, 'seed*')):
            previous = DEFAULT_TEACHER
        else:
            previous = None
        if previous is not None and previous != self.teacher:
            raise SystemExit(
                f'{self.work_dir} holds the stages of --teacher {previous}; '
                f'use another --work-dir for --teacher {self.teacher}')

    def _lock_work_dir(self) -> None:
        """Hold the work dir for this pipeline alone, from before anything
        is written until it ends (node 0 of a multi-node run): another
        pipeline there refuses at once (:class:`FolderBusy`)."""
        if not self.launch.leads:
            return
        self.lock.acquire()
        if self.lock.taken_over:
            print(f'note: {self.lock.path} was left by a pipeline that is '
                  f'gone ({describe_holder(self.lock.taken_over)}): taken '
                  'over', flush=True)

    def _claim_work_dir(self) -> None:
        """Create the work dir, record its teacher and log there."""
        marker = osp.join(self.work_dir, TEACHER_MARKER)
        try:
            os.makedirs(self.work_dir, exist_ok=True)
            if not osp.isfile(marker):
                atomic_dump_json(dict(teacher=self.teacher), marker)
            self.log_to(osp.join(self.work_dir, 'cast_pipeline.log'))
        except OSError as e:
            print(f'work dir {self.work_dir} cannot be written ({e}): '
                  'choose another --work-dir', file=sys.stderr)
            raise SystemExit(PREFLIGHT_FAILED)

    def run(self) -> Dict:
        """Plan, preflight, then run every stage (``--dry-run``: no run)."""
        if self.args.dry_run:
            holder = self.lock.held_by_another()
            if holder is not None:
                print(f'note: a pipeline runs in this work dir now '
                      f'({describe_holder(holder)}): its stages may finish '
                      'while you read this plan', flush=True)
            return self._run_plan()
        self._lock_work_dir()
        try:
            return self._run_plan()
        finally:
            self.lock.release()

    def _run_plan(self) -> Dict:
        dry = self.args.dry_run
        self._check_work_dir_teacher()
        if self.args.reuse_from:  # before anything is written
            self._check_reuse_base(osp.abspath(self.args.reuse_from))
        if not dry:
            self._claim_work_dir()
        if self.ds == 'toy' and not dry:
            self.prepare_toy_data()
            if self.teacher_cfg['tiny_assets']:
                self.prepare_tiny_teacher_assets()
        problems = []
        if self.custom:
            problems = self.check_custom_dataset()
            # (with problems, as on a dry run: the command, no files)
            self.prepare_custom_split(dry or bool(problems))
        first, per_seed = self.plan()
        stages = first + [st for seed in per_seed.values() for st in seed]
        self.link_reused(stages, dry)
        self.set_aside_damaged(stages, dry)
        if dry:
            print('stage plan:')
            for stage in stages:
                print('  ' + stage.describe())
                print('    --cfg-options ' + ' '.join(stage.options))
        problems += self.preflight(stages) + self.batch_problems(stages)
        self.print_batches(stages)
        if problems:
            print(f'preflight: {len(problems)} problem(s), no stage was '
                  'started:', file=sys.stderr)
            for line in problems:
                print(f'  {line}', file=sys.stderr)
            raise SystemExit(PREFLIGHT_FAILED)
        print('preflight: ok', flush=True)
        self.print_split(per_seed)
        if dry:
            return {}
        results = self.run_stages(first, per_seed)
        if not self.launch.leads:
            return results
        baseline = next(st for st in next(iter(per_seed.values()))
                        if st.key == 'supervised_student')
        self.write_table(results, self.val_ann_file(baseline))
        return results

    def set_aside_damaged(self, stages: List[Stage], dry: bool) -> None:
        """Rename the checkpoints of this work dir's stages that cannot be
        loaded (left truncated by a kill or a full disk while an older
        version wrote them) to ``*.damaged``, so that their stages resume
        from the newest intact one; one line each. A dry run only tells.
        (A damaged checkpoint the user passed in is refused by the
        preflight.)"""
        for stage in stages:
            if stage.max_iters is None or osp.islink(stage.work_dir):
                continue  # a linked stage is another work dir's
            for path in iteration_checkpoints(stage.work_dir):
                reason = checkpoint_damage(path)
                if reason is None:
                    continue
                if dry:
                    self.damaged.append(path)
                    print(f'{stage.label} {reason}: a run sets it aside and '
                          'resumes the stage from its newest intact '
                          'checkpoint', flush=True)
                    continue
                moved = set_aside_checkpoint(path)
                print(f'{stage.label} {path} cannot be loaded: set aside as '
                      f'{osp.basename(moved)}; the stage resumes from its '
                      'newest intact checkpoint (or starts over)', flush=True)

    def write_table(self, per_seed: Dict[int, Dict],
                    gt_file: Optional[str] = None) -> Dict:
        """Write ``results.md`` / ``results.json`` of the run (see
        :func:`mmcast.evaluation.write_results_table`), with each seed's
        split-half evaluation noise where its predictions on val were kept.
        """
        keys = [k for k, _ in ROWS if all(k in rows for rows in
                                          per_seed.values())]
        noise = {}
        for seed in per_seed if gt_file else ():
            wd = osp.join(self.work_dir, f'seed{seed}')
            files = {k: self.predictions_file(wd, k) for k in keys}
            noise[seed] = claims_noise(files, gt_file, seed)
        methods = ' and '.join(
            {'cast': 'CAST', 'gd': 'Guided Distillation'}[m]
            for m in METHODS if m in self.args.methods)
        return write_results_table(
            per_seed, self.work_dir, self.ds, methods,
            teacher='' if self.teacher == DEFAULT_TEACHER else self.teacher,
            noise=noise, metric=PRIMARY_METRIC.get(self.ds, DEFAULT_METRIC))
