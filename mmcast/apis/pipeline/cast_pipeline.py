# Copyright (c) mmcast contributors. All rights reserved.
"""The CAST pipeline of one dataset: plan, preflight, run, results table.

:class:`CASTPipeline` reads top to bottom: it takes a checked
:class:`~mmcast.apis.pipeline.run_spec.RunSpec`, makes the data, asks the
:class:`~mmcast.apis.pipeline.planning.Planner` for the
:class:`~mmcast.apis.pipeline.planning.Plan`, links what ``--reuse-from``
has, checks everything before the first stage, lets the
:class:`~mmcast.apis.pipeline.runner.StageRunner` run the stages and writes
the results table. Each part is an object or a function of its own module,
given what it needs.
"""
import logging
import os
import os.path as osp
from typing import Callable, Dict, List, Optional

from mmcast.evaluation import ROWS, claims_noise, write_results_table
from mmcast.utils.atomic_io import atomic_dump_json
from mmcast.utils.checkpoint_loading import checkpoint_damage
from mmcast.utils.stage_state import (iteration_checkpoints,
                                      set_aside_checkpoint)
from .batch_plan import print_batches
from .config_loader import ConfigLoader
from .data_preparation import (check_custom_dataset, prepare_custom_split,
                               prepare_tiny_teacher_assets, prepare_toy_data,
                               print_split)
from .errors import PipelineError, PreflightFailed
from .launchers import cfg_options_args
from .planning import Plan, Planner, predictions_file
from .preflight import run_preflight
from .reuse import StageReuse, check_reuse_base, check_work_dir_teacher
from .run_spec import RunSpec
from .runner import StageRunner, seed_results
from .settings import (DEFAULT_METRIC, DEFAULT_TEACHER, DISTILL_TEACHERS,
                       METHODS, PRIMARY_METRIC, TEACHER_MARKER)
from .stage_changes import ChangeDecider, decision_lines
from .stage_cost import read_cost
from .work_dir_lock import WORK_DIR_LOCK, FolderLock, describe_holder


class CASTPipeline:
    """The stages of one dataset, run through stock MMDet entry points.

    Args:
        spec (RunSpec): The run (:meth:`RunSpec.from_args`).
    """

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.loader = ConfigLoader(spec)
        self.lock = FolderLock(spec.work_dir, WORK_DIR_LOCK)
        # stops this run's logging to its work dir (set when it claims it)
        self._close_log: Optional[Callable[[], None]] = None

    def plan(self) -> Plan:
        """The stages of the run (:class:`Planner`)."""
        return Planner(self.spec, self.loader).plan()

    def run(self) -> Dict:
        """Plan, preflight, then run every stage (``--dry-run``: no run),
        the work dir held by this pipeline alone
        (:class:`~mmcast.apis.pipeline.work_dir_lock.FolderBusy` when
        another one holds it). Its logging to ``cast_pipeline.log`` stops
        when it ends, however it ends."""
        # read-only checks first: a refused run writes nothing
        check_work_dir_teacher(self.spec)
        check_reuse_base(self.spec)
        if self.spec.dry_run:
            holder = self.lock.held_by_another()
            if holder is not None:
                print(f'note: a pipeline runs in this work dir now '
                      f'({describe_holder(holder)}): its stages may finish '
                      'while you read this plan', flush=True)
            return self._run()
        self._lock_work_dir()
        try:
            return self._run()
        finally:  # a later run in this process logs to its own file only
            if self._close_log is not None:
                self._close_log()
                self._close_log = None
            self.lock.release()

    def _run(self) -> Dict:
        spec, loader, dry = self.spec, self.loader, self.spec.dry_run
        if not dry:
            self._claim_work_dir()
        problems, made_here = self._prepare_data()
        plan = self.plan()
        for line in plan.notes:
            print(line, flush=True)
        StageReuse(spec, loader).link_reused(plan, dry)
        damaged = self._set_aside_damaged(plan)
        if dry:
            print_plan(plan)
            decisions = ChangeDecider(spec, loader).decide(
                plan, seed_results(spec.work_dir, plan))
            for line in decision_lines(plan, decisions):
                print(line, flush=True)
        report = run_preflight(spec, loader, plan, made_here, damaged)
        print_batches(plan.stages, report.image_counts)
        if problems + report.problems:
            raise PreflightFailed(problems + report.problems)
        print('preflight: ok', flush=True)
        print_split(loader, plan, report.image_counts)
        if dry:
            return {}
        results = StageRunner(spec, loader, report.checkpoint_bytes).run(plan)
        if spec.launch.leads:
            baseline = plan.seed_stage(spec.seeds[0], 'supervised_student')
            self.write_table(results, loader.val_ann_file(baseline),
                             {st.key: read_cost(st.work_dir)
                              for st in plan.first})
        return results

    def _prepare_data(self) -> tuple:
        """The data the stages read (toy data, the tiny teachers' files,
        your dataset's split): the problems found, and the folders a dry
        run leaves for the stages to fill."""
        spec = self.spec
        if spec.dataset == 'toy' and not spec.dry_run:
            prepare_toy_data(spec)
            if spec.tiny_teachers:
                prepare_tiny_teacher_assets(spec)
        if not spec.custom:
            return [], []
        problems = check_custom_dataset(spec, self.loader)
        # (with problems, as on a dry run: the command, no files)
        return problems, prepare_custom_split(
            self.loader, spec.dry_run or bool(problems))

    def _lock_work_dir(self) -> None:
        """Hold the work dir for this pipeline alone, from before anything
        is written until it ends (node 0 of a multi-node run)."""
        if not self.spec.launch.leads:
            return
        self.lock.acquire()
        if self.lock.taken_over:
            print(f'note: {self.lock.path} was left by a pipeline that is '
                  f'gone ({describe_holder(self.lock.taken_over)}): taken '
                  'over', flush=True)

    def _claim_work_dir(self) -> None:
        """Create the work dir, record its teacher and log there (until
        :meth:`run` ends)."""
        work_dir = self.spec.work_dir
        marker = osp.join(work_dir, TEACHER_MARKER)
        try:
            os.makedirs(work_dir, exist_ok=True)
            if not osp.isfile(marker):
                atomic_dump_json(dict(teacher=self.spec.teacher), marker)
            self._close_log = log_to(osp.join(work_dir, 'cast_pipeline.log'))
        except OSError as e:
            raise PipelineError(f'work dir {work_dir} cannot be written '
                                f'({e}): choose another --work-dir')

    def _set_aside_damaged(self, plan: Plan) -> List[str]:
        """Rename the checkpoints of this work dir's stages that cannot be
        loaded (left truncated by a kill or a full disk while an older
        version wrote them) to ``*.damaged``, so that their stages resume
        from the newest intact one; one line each. A dry run only tells,
        and returns them (the preflight takes them as missing). A damaged
        checkpoint the user passed in is refused by the preflight."""
        told = []
        for stage in plan.stages:
            if stage.max_iters is None or osp.islink(stage.work_dir):
                continue  # a linked stage is another work dir's
            for path in iteration_checkpoints(stage.work_dir):
                reason = checkpoint_damage(path)
                if reason is None:
                    continue
                if self.spec.dry_run:
                    told.append(path)
                    print(f'{stage.label} {reason}: a run sets it aside and '
                          'resumes the stage from its newest intact '
                          'checkpoint', flush=True)
                    continue
                moved = set_aside_checkpoint(path)
                print(f'{stage.label} {path} cannot be loaded: set aside as '
                      f'{osp.basename(moved)}; the stage resumes from its '
                      'newest intact checkpoint (or starts over)', flush=True)
        return told

    def write_table(self, per_seed: Dict[int, Dict],
                    gt_file: Optional[str] = None,
                    pretraining_cost: Optional[Dict[str, Dict]] = None
                    ) -> Dict:
        """Write ``results.md`` / ``results.json`` of the run (see
        :func:`mmcast.evaluation.write_results_table`), with each seed's
        split-half evaluation noise where its predictions on val were kept,
        and the cost of the stages before the seeds (``{stage key:
        dict(cpu_s, wall_s)}``).
        """
        spec = self.spec
        keys = [k for k, _ in ROWS if all(k in rows for rows in
                                          per_seed.values())]
        noise = {}
        for seed in per_seed if gt_file else ():
            wd = osp.join(spec.work_dir, f'seed{seed}')
            files = {k: predictions_file(wd, k) for k in keys}
            noise[seed] = claims_noise(files, gt_file, seed)
        methods = ' and '.join(
            {'cast': 'CAST', 'gd': 'Guided Distillation'}[m]
            for m in METHODS if m in spec.methods)
        return write_results_table(
            per_seed, spec.work_dir, spec.dataset, methods,
            teacher='' if spec.teacher == DEFAULT_TEACHER else spec.teacher,
            noise=noise,
            metric=PRIMARY_METRIC.get(spec.dataset, DEFAULT_METRIC),
            distill_teacher='' if spec.distill_teacher == 'selftrained' else
            DISTILL_TEACHERS[spec.distill_teacher],
            ablation=spec.ablation.record() if spec.ablation else None,
            student=spec.student or '', pretraining_cost=pretraining_cost)


def print_plan(plan: Plan) -> None:
    """The stages and their options, as ``--dry-run`` shows them."""
    print('stage plan:')
    for stage in plan.stages:
        print('  ' + stage.describe())
        print('    --cfg-options ' +
              ' '.join(cfg_options_args(stage.overrides)))


def log_to(path: str) -> Callable[[], None]:
    """Append the config loader's messages and Python's warnings (all that
    :func:`~mmcast.apis.pipeline.quiet_console` keeps off the console) to
    ``path``.

    Returns:
        Callable[[], None]: Stops it: removes the file handler from the
        loggers and closes it.
    """
    from mmengine.logging import MMLogger

    handler = logging.FileHandler(path, encoding='utf-8')
    handler.setFormatter(logging.Formatter(
        '%(asctime)s %(name)s %(levelname)s: %(message)s'))
    loggers = (MMLogger.get_instance('mmengine'),
               logging.getLogger('py.warnings'))
    for logger in loggers:
        logger.addHandler(handler)

    def close() -> None:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()

    return close
