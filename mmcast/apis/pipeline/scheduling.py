# Copyright (c) mmcast contributors. All rights reserved.
"""Running the planned stages, ``--jobs`` at once, each after the stages it
is made from, and collecting their metrics."""
import concurrent.futures
import json
import os.path as osp
import sys
from typing import Dict, List

from mmcast.utils.atomic_io import atomic_dump_json
from ..stage_failure import StageFailed
from ..stage_progress import ProgressMonitor
from .settings import DEFAULT_METRIC, PRIMARY_METRIC, UPSTREAM
from .stage import Stage, pseudo_label_summary, read_metrics


class StageScheduling:
    """Running the planned stages, ``--jobs`` at once, each after the stages it
    is made from, and collecting their metrics.

    A part of :class:`~mmcast.apis.pipeline.CASTPipeline`; it uses the
    attributes that class sets.
    """

    def run_stages(self, first: List[Stage],
                   per_seed: Dict[int, List[Stage]]) -> Dict[int, Dict]:
        """Run (or skip) every stage, up to ``--jobs`` at once, each after
        the stages it is made from (:data:`UPSTREAM`); among the stages
        that may start, the first in the plan starts first. Returns each
        seed's metrics (also kept in ``seed<N>/results.json``). After a
        failed stage no other starts; those running finish, then it raises.
        """
        jobs = [(None, st) for st in first] + [
            (seed, st) for seed, stages in per_seed.items() for st in stages]
        for number, (_, stage) in enumerate(jobs, 1):
            stage.number, stage.count = number, len(jobs)
        index = {(seed, st.key): i for i, (seed, st) in enumerate(jobs)}
        needs = [{index[k] for u in UPSTREAM[st.key]
                  for k in ((seed, u), (None, u)) if k in index}
                 for seed, st in jobs]
        results = {}
        for seed in per_seed:
            path = osp.join(self.work_dir, f'seed{seed}', 'results.json')
            results[seed] = json.load(open(path)) if osp.isfile(path) else {}
        waiting, done, failed = list(range(len(jobs))), set(), []
        self.monitor = ProgressMonitor(self.args.progress_interval)
        self.monitor.plan([(st.label, st.key, st.work_dir, st.max_iters or 0)
                           for _, st in jobs], self.args.jobs)
        try:
            self._schedule(jobs, needs, results, waiting, done, failed)
        finally:
            self.monitor.close()
            self.monitor = None
        for other in failed[1:]:
            print(other.report() if isinstance(other, StageFailed) else
                  repr(other), file=sys.stderr, flush=True)
        if failed:
            raise failed[0]
        return results

    def _schedule(self, jobs: list, needs: list, results: Dict,
                  waiting: list, done: set, failed: list) -> None:
        """:meth:`run_stages`' loop: start what may start, collect what
        ended. Ctrl-C, SIGTERM or SIGHUP stop the stages running before the
        pool waits for its threads."""
        with concurrent.futures.ThreadPoolExecutor(self.args.jobs) as pool:
            try:
                self._schedule_in(pool, jobs, needs, results, waiting, done,
                                  failed)
            except KeyboardInterrupt:
                self.stop_processes()
                raise

    def _schedule_in(self, pool, jobs: list, needs: list, results: Dict,
                     waiting: list, done: set, failed: list) -> None:
        """Start what may start, collect what ended, until all ended (or
        one failed and the others running ended)."""
        running = {}
        while waiting or running:
            ready = [i for i in waiting if needs[i] <= done]
            while ready and not failed and len(running) < self.args.jobs:
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
        """Add a finished stage's metrics to its seed's results.json (read
        again from its logs when the row holds another metric than the
        dataset's, e.g. written before Cityscapes read cityscapesscripts').
        """
        results_file = osp.join(self.work_dir, f'seed{seed}', 'results.json')
        metric = PRIMARY_METRIC.get(self.ds, DEFAULT_METRIC)
        row = results.get(stage.key)
        if row is None or row.get('metric', DEFAULT_METRIC) != metric:
            results[stage.key] = read_metrics(stage.work_dir, metric)
            atomic_dump_json(results, results_file, indent=2)
        self.say(f'[seed {seed}] [{stage.key}] mask AP '
                 f'{results[stage.key]["segm_AP"]} ({metric})')
        if stage.label not in self.pseudo_labels_told:  # e.g. a done stage
            for line in self.pseudo_label_lines(stage):
                self.say(line)

    def pseudo_label_lines(self, stage: Stage) -> List[str]:
        """:func:`pseudo_label_summary` of ``stage``, once per run."""
        self.pseudo_labels_told.add(stage.label)
        return pseudo_label_summary(stage)

    def pseudo_label_watch(self, stage: Stage):
        """What the progress monitor watches while ``stage`` trains: its
        pseudo-label file, told as soon as the stage writes it."""
        path = stage.pseudo_label_file
        if path is None:
            return None
        return path, lambda: self.pseudo_label_lines(stage)
