# Copyright (c) mmcast contributors. All rights reserved.
"""Running a plan's stages: ``--jobs`` at once, each after the stages it is
made from, each as its own process group
(:mod:`~mmcast.apis.pipeline.stage_guard`; on the CPU forked from one
process that imported the stack, :mod:`~mmcast.apis.pipeline.forked_stages`)
with its log, trained or resumed with the completion record last, its
progress on the console, its metrics collected."""
import concurrent.futures
import contextlib
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

from mmcast.utils.atomic_io import atomic_dump_json
from mmcast.utils.stage_state import (CRASHED, FINAL_EVAL, FINISHED, NEW,
                                      iteration_checkpoints,
                                      logged_contrast_monitors, logged_metrics,
                                      read_completion, set_aside,
                                      stage_status, write_completion)
from . import stage_guard
from .config_loader import ConfigLoader
from .forked_stages import (FORK_SERVER_LOG, ForkedStage, StageForkServer,
                            forks_stages)
from .launchers import cfg_options_args, printable, stage_command
from .planning import Plan
from .provenance import provenance
from .run_spec import RunSpec
from .settings import DEFAULT_METRIC, PRIMARY_METRIC, REPO_ROOT
from .stage import Stage, pseudo_label_summary, read_metrics
from .stage_changes import (KEEP, ChangeDecider, StageDecision,
                            decide_together, decision_lines)
from .stage_cost import CostWatch, add_cost, read_cost, wait_with_cpu_time
from .stage_failure import StageFailed, disk_full_cause
from .stage_progress import ProgressMonitor


class StageRunner:
    """Runs the stages of a plan.

    Args:
        spec (RunSpec): The run (launch settings, jobs, environment).
        loader (ConfigLoader): Its configs (a crashed stage resumes only
            with the config it ran with).
        checkpoint_bytes (dict): ``{stage work dir: bytes}`` of the
            checkpoints each stage keeps (the preflight's estimate).
    """

    def __init__(self, spec: RunSpec, loader: ConfigLoader,
                 checkpoint_bytes: Optional[Dict[str, int]] = None) -> None:
        self.spec = spec
        self.loader = loader
        self.checkpoint_bytes = dict(checkpoint_bytes or {})
        self.monitor: Optional[ProgressMonitor] = None
        self._processes: set = set()
        self._stopping = False
        self._said_fresh = False  # that the fork server forks no more
        self._fork_server = StageForkServer(
            spec.env, osp.join(spec.work_dir, FORK_SERVER_LOG)) \
            if forks_stages(spec.launch, spec.env) else None
        self._told: set = set()  # stages whose pseudo-label counts were shown
        self._places: Dict[str, str] = {}  # work dir: ' (stage 3 of 14)'
        # {work dir: decision} of the finished stages (ChangeDecider)
        self.decisions: Dict[str, StageDecision] = {}

    # ----------------------------------------------------------- the plan
    def run(self, plan: Plan) -> Dict[int, Dict]:
        """Run (or skip) every stage, up to ``--jobs`` at once, each after
        the stages it is made from (``Stage.upstream``); among the stages
        that may start, the first in the plan
        starts first. Returns each seed's metrics (also kept in
        ``seed<N>/results.json``). Which finished stages are made again is
        decided first (:class:`~mmcast.apis.pipeline.stage_changes.
        ChangeDecider`, node 0's decision on every node). After a failed
        stage no other starts; those running finish, then it raises."""
        jobs = [(None, st) for st in plan.first] + [
            (seed, st) for seed, stages in plan.per_seed.items()
            for st in stages]
        self._places = {st.work_dir: f' (stage {number} of {len(jobs)})'
                        for number, (_, st) in enumerate(jobs, 1)}
        index = {st.work_dir: i for i, (_, st) in enumerate(jobs)}
        needs = [{index[u] for u in st.upstream if u in index}
                 for _, st in jobs]
        results = seed_results(self.spec.work_dir, plan)
        self.decide(plan, results)
        failed: list = []
        self.monitor = ProgressMonitor(self.spec.progress_interval)
        self.monitor.plan([(st.label, st.key, st.work_dir, st.max_iters or 0)
                           for _, st in jobs], self.spec.jobs)
        try:
            with concurrent.futures.ThreadPoolExecutor(self.spec.jobs) as pool:
                try:
                    self._schedule(pool, jobs, needs, results, failed)
                except KeyboardInterrupt:  # stopped before the pool waits
                    self.stop_processes()
                    raise
        finally:
            self.monitor.close()
            self.monitor = None
            if self._fork_server is not None:
                self._fork_server.close()
        for other in failed[1:]:
            print(other.report() if isinstance(other, StageFailed) else
                  repr(other), file=sys.stderr, flush=True)
        if failed:
            raise failed[0]
        return results

    def decide(self, plan: Plan, results: Dict[int, Dict]) -> None:
        """Decide which finished stages are made again (node 0 decides,
        every node takes its decision) and say so, one line each; a test
        stage made again loses its row."""
        leads = self.spec.launch.leads
        self.decisions = decide_together(
            ChangeDecider(self.spec, self.loader).decide(plan, results)
            if leads else None, self.spec.launch, self.spec.work_dir)
        for line in decision_lines(plan, self.decisions):
            print(line, flush=True)
        for stage in plan.stages:
            if stage.max_iters is None and \
                    self.decisions.get(stage.work_dir, KEEP).redo:
                results.get(stage.seed, {}).pop(stage.key, None)

    def _schedule(self, pool, jobs: list, needs: list, results: Dict,
                  failed: list) -> None:
        """Start what may start, collect what ended, until all ended (or
        one failed and the others running ended)."""
        waiting, done, running = list(range(len(jobs))), set(), {}
        while waiting or running:
            ready = [i for i in waiting if needs[i] <= done]
            while ready and not failed and len(running) < self.spec.jobs:
                i = ready.pop(0)
                waiting.remove(i)
                seed, stage = jobs[i]
                running[pool.submit(self._run_job, stage,
                                    results.get(seed, {}))] = i
            if not running:
                break
            finished, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                i = running.pop(future)
                if future.exception() is not None:
                    failed.append(future.exception())
                    continue
                done.add(i)
                seed, stage = jobs[i]
                self.monitor.done(stage.label)
                if seed is not None:
                    self._record(seed, stage, results[seed])

    def _run_job(self, stage: Stage, results: Dict) -> None:
        """Train a stage (skipped when finished), or test it when its
        seed's ``results`` have no row for it yet (a linked one was tested
        where it lives)."""
        if stage.max_iters is not None:
            self.train(stage)
        elif stage.key not in results and not osp.islink(stage.work_dir):
            self.test(stage)

    def _record(self, seed: int, stage: Stage, results: Dict) -> None:
        """Add a finished stage's metrics, cost (``cpu_s``, ``wall_s``) and
        ``machine`` and, kept though made by other code, its ``code`` note
        to its seed's results.json (read again from its logs when the row
        holds another metric than the dataset's, e.g. written before
        Cityscapes read cityscapesscripts').
        """
        results_file = osp.join(self.spec.work_dir, f'seed{seed}',
                                'results.json')
        metric = PRIMARY_METRIC.get(self.spec.dataset, DEFAULT_METRIC)
        row = results.get(stage.key)
        if row is None or row.get('metric', DEFAULT_METRIC) != metric or \
                stage.max_iters is not None:
            # a training stage's row is read from its logs at every run,
            # never kept apart: a stage trained again never keeps its old one
            row = read_metrics(stage.work_dir, metric)
            row.update(logged_contrast_monitors(stage.work_dir))
            row.update(read_cost(stage.work_dir))
            record = read_completion(stage.work_dir) or {}
            if record.get('machine'):
                row['machine'] = record['machine']
            if record.get('resumed_from') is not None:
                row['resumed_from'] = record['resumed_from']
                if record.get('device'):
                    row['resumed_on'] = record['device']
        row = dict(row)
        decision = self.decisions.get(stage.work_dir, KEEP)
        row.pop('code', None)
        if decision.code and not decision.redo:  # kept, made by other code
            row['code'] = decision.code
        if row != results.get(stage.key):
            results[stage.key] = row
            atomic_dump_json(results, results_file, indent=2)
        self.say(f'[seed {seed}] [{stage.key}] mask AP '
                 f'{results[stage.key]["segm_AP"]} ({metric})')
        if stage.label not in self._told:  # e.g. a stage found done
            for line in self._pseudo_label_lines(stage):
                self.say(line)

    def _pseudo_label_lines(self, stage: Stage) -> List[str]:
        """:func:`pseudo_label_summary` of ``stage``, once per run."""
        self._told.add(stage.label)
        return pseudo_label_summary(stage)

    # ---------------------------------------------------------- one stage
    def train(self, stage: Stage) -> str:
        """Train one stage → its final checkpoint.

        Finished (:func:`~mmcast.utils.stage_state.stage_status`): skipped,
        unless the run decided to make it again (:meth:`decide`): then node
        0 sets it aside and every node trains it again. Crashed with
        the config of this run: resumed from its newest checkpoint; when it
        crashed after its last checkpoint (in the final evaluation, say),
        that checkpoint is evaluated. Crashed with another config: its work
        dir is set aside and the stage trains from the start. The
        completion record is written last.
        """
        final = stage.final
        status = stage_status(stage.work_dir, stage.max_iters)
        leads = self.spec.launch.leads
        redo = self.decisions.get(stage.work_dir, KEEP).redo
        if status == FINISHED and not redo:
            self.say(f'{stage.label} done{self.of_plan(stage)}: {final}')
            return final
        if status == FINISHED:
            if leads:  # the other nodes join the run it starts
                moved = set_aside(stage.work_dir)
                self.say(f'{stage.label} trained again (the finished run is '
                         f'kept in {moved})')
            status = NEW
        if status == CRASHED and leads and \
                not self.loader.same_config(stage, stage.work_dir):
            moved = set_aside(stage.work_dir)
            self.say(f'{stage.label} the unfinished run in {stage.work_dir} '
                     f'had another config: moved to {moved}; training from '
                     'the start')
            status = NEW
        os.makedirs(stage.work_dir, exist_ok=True)
        found = iteration_checkpoints(stage.work_dir)
        last = found[0] if status == CRASHED and found else None
        if last is None or osp.realpath(last) != osp.realpath(final):
            self.check_free_space(stage)
            self.say(f'{stage.label} training{self.of_plan(stage)} '
                     f'{stage.config} for {stage.max_iters} iterations' +
                     (f' (resumed from {osp.basename(last)})' if last
                      else ''))
            # the checkpoint by path: MMEngine's own --resume would read the
            # absolute path last_checkpoint recorded, which is stale in a
            # copied or moved work dir
            self._run(stage, self._command(
                'train', stage.config, stage.work_dir,
                (['--resume', last] if last else []) + ['--cfg-options'] +
                cfg_options_args(stage.overrides)))
        if logged_metrics(stage.work_dir) is None:
            # trained, but not evaluated: e.g. it crashed in its final
            # evaluation, after its last checkpoint
            self.say(f'{stage.label} evaluating {final}')
            self._run(stage, self._command(
                'test', stage.config, osp.join(stage.work_dir, FINAL_EVAL),
                ['--checkpoint', final, '--cfg-options'] +
                cfg_options_args(stage.overrides)))
        if leads:  # the other nodes only join the runs
            write_completion(stage.work_dir, final, stage.max_iters,
                             provenance(stage, self.loader.load(stage),
                                        self.spec.work_dir, self.spec.env,
                                        _iteration(last)))
        return final

    def test(self, stage: Stage) -> None:
        """Evaluate the stage's checkpoint with MMDetection's ``test.py``
        (the command of ``mim test``); its record (what the row was made
        from) is written last."""
        self.say(f'{stage.label} testing{self.of_plan(stage)} '
                 f'{stage.checkpoint}')
        os.makedirs(stage.work_dir, exist_ok=True)
        self._run(stage, self._command(
            'test', stage.config, stage.work_dir,
            ['--checkpoint', stage.checkpoint, '--cfg-options'] +
            cfg_options_args(stage.overrides)))
        if self.spec.launch.leads:
            write_completion(stage.work_dir, stage.checkpoint, None,
                             provenance(stage, self.loader.load(stage),
                                        self.spec.work_dir, self.spec.env))

    def check_free_space(self, stage: Stage) -> None:
        """Before a stage trains: room for its checkpoints (the preflight's
        estimate for that stage), else :class:`StageFailed` naming both
        figures."""
        need = self.checkpoint_bytes.get(stage.work_dir)
        if not need:
            return
        free = shutil.disk_usage(stage.work_dir).free
        if free < need:
            raise StageFailed(
                stage.label, None, osp.join(stage.work_dir, 'pipeline.log'),
                cause=f'not started: {stage.work_dir} has {free >> 20} MiB '
                f'free, its checkpoints take about {need >> 20} MiB: free '
                'space (or use another --work-dir) and run the same command '
                'again')

    def _command(self, mode: str, config: str, work_dir: str,
                 extra: List[str]) -> List[str]:
        return stage_command(mode, config, work_dir, extra, self.spec.launch,
                             job_name=osp.basename(work_dir))

    def _run(self, stage: Stage, cmd: List[str]) -> None:
        """Run ``cmd`` for ``stage`` under :mod:`~mmcast.apis.pipeline.
        stage_guard` (its processes end with the pipeline), its output into
        the stage's log; a training run's progress (and its pseudo-label
        count, as soon as it writes them) is shown meanwhile. Its processor
        and wall seconds are added to the stage's cost, read meanwhile too
        (:mod:`~mmcast.apis.pipeline.stage_cost`)."""
        log_file = osp.join(stage.work_dir, 'pipeline.log')
        self.say('$ ' + printable(cmd))
        followed = stage.max_iters is not None and self.monitor is not None
        if followed:
            watch = None if stage.pseudo_label_file is None else (
                stage.pseudo_label_file,
                lambda: self._pseudo_label_lines(stage))
            self.monitor.start(stage.label, stage.work_dir, stage.max_iters,
                               watch=watch)
        try:
            started = time.monotonic()
            proc = self._start(cmd, log_file)
            self._processes.add(proc)
            watch = CostWatch(stage.work_dir)
            watch.start(proc.stage_pid if isinstance(proc, ForkedStage)
                        else proc.pid)
            if self._stopping:  # stopped while it started
                proc.send_signal(signal.SIGTERM)
            try:
                returncode, cpu_s = proc.wait_with_cpu_time() \
                    if isinstance(proc, ForkedStage) \
                    else wait_with_cpu_time(proc)
            finally:
                watch.stop()
                self._processes.discard(proc)
            try:
                add_cost(stage.work_dir, cpu_s, time.monotonic() - started)
            except OSError:  # a full disk: the stage's outcome, told below,
                pass  # matters more than its cost
        finally:
            if followed:
                self.monitor.finish(stage.label)
        if returncode != 0:
            raise StageFailed(stage.label, returncode, log_file,
                              cause=disk_full_cause(
                                  stage.work_dir, log_file,
                                  self.checkpoint_bytes.get(stage.work_dir)))

    def _start(self, cmd: List[str], log_file: str):
        """Start ``cmd`` under a guard, its output appended to ``log_file``
        → the guard's process: forked by the fork server where the run uses
        one and it can, else a new process
        (:mod:`~mmcast.apis.pipeline.stage_guard`)."""
        if self._fork_server is not None and self._fork_server.forks(cmd):
            forked = self._fork_server.start(cmd, log_file, printable(cmd))
            if forked is not None:
                return forked
            if not self._said_fresh:
                self._said_fresh = True
                self.say('stages start as new processes from now on: '
                         f'{self._fork_server.broken}')
        guard = [sys.executable, stage_guard.__file__, str(os.getpid())]
        with open(log_file, 'a', encoding='utf-8') as log:
            return subprocess.Popen(guard + cmd, cwd=REPO_ROOT, stdout=log,
                                    stderr=subprocess.STDOUT,
                                    env=self.spec.env)

    def of_plan(self, stage: Stage) -> str:
        """`` (stage 3 of 14)`` for a stage of the plan being run, else
        ``''``."""
        return self._places.get(stage.work_dir, '')

    def stop_processes(self) -> None:
        """Stop the stages still running (Ctrl-C, SIGTERM, SIGHUP): each
        guard stops its stage's process group, then exits."""
        self._stopping = True
        for proc in list(self._processes):
            proc.send_signal(signal.SIGTERM)
        for proc in list(self._processes):
            try:
                proc.wait(timeout=stage_guard.GRACE_S + 25)
            except subprocess.TimeoutExpired:
                proc.kill()

    def say(self, line: str) -> None:
        """Print a line of the pipeline's own (between progress bars)."""
        if self.monitor is not None:
            self.monitor.write(line)
        else:
            print(line, flush=True)


def seed_results(work_dir: str, plan: Plan) -> Dict[int, Dict]:
    """``{seed: rows}`` of each seed's ``results.json`` so far."""
    results = {}
    for seed in plan.per_seed:
        path = osp.join(work_dir, f'seed{seed}', 'results.json')
        with contextlib.suppress(OSError, ValueError), \
                open(path, encoding='utf-8') as f:
            results[seed] = json.load(f)
        results.setdefault(seed, {})
    return results


def _iteration(checkpoint: Optional[str]) -> Optional[int]:
    """The iteration of an ``iter_<N>.pth`` checkpoint (``None``: none)."""
    if checkpoint is None:
        return None
    return int(osp.basename(checkpoint)[len('iter_'):-len('.pth')])
