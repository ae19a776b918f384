# Copyright (c) mmcast contributors. All rights reserved.
"""The runner's schedule (:class:`~mmcast.apis.pipeline.StageRunner`): with
``--jobs 2`` a stage starts only after every stage of its ``upstream`` has
ended, two independent stages run at once, the first ready stage of the plan
starts first, and after a failed stage none starts. The stages' own runs are
replaced by timed steps (what is tested is the scheduling, not MMDetection);
each stage is a frozen :class:`~mmcast.apis.pipeline.Stage` made by hand."""
import os.path as osp
import threading
import time

import pytest

from conftest import pipeline_of
from mmcast.apis.pipeline import Plan, Stage, StageRunner


class TimedRunner(StageRunner):
    """Runs each stage as a short sleep, noting when it started and ended."""

    def __init__(self, *args, fail: str = '', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fail = fail
        self.events = []
        self.lock = threading.Lock()

    def _run_job(self, stage: Stage, results: dict) -> None:
        with self.lock:
            self.events.append(('start', stage.key, time.monotonic()))
        time.sleep(0.2)
        if stage.key == self.fail:
            raise RuntimeError(f'{stage.key} failed')
        with self.lock:
            self.events.append(('end', stage.key, time.monotonic()))

    def _record(self, seed: int, stage: Stage, results: dict) -> None:
        results[stage.key] = dict(segm_AP=0.0)


def _plan(work_dir: str) -> Plan:
    """A foundation shared by the seed, then a chain 1a -> 1b -> 2 and a
    baseline that needs only the foundation."""
    seed_dir = osp.join(work_dir, 'seed0')

    def stage(key, upstream, seed=0):
        folder = seed_dir if seed is not None else work_dir
        return Stage(key, key, 'c.py', osp.join(folder, key), max_iters=1,
                     seed=seed, upstream=tuple(upstream))

    foundation = stage('student_foundation', [], seed=None)
    return Plan(
        [foundation], {0: [
            stage('adapt_teacher', []),
            stage('adapt_teacher_selftrain',
                  [osp.join(seed_dir, 'adapt_teacher')]),
            stage('distill', [osp.join(seed_dir, 'adapt_teacher_selftrain'),
                              foundation.work_dir]),
            stage('supervised_student', [foundation.work_dir]),
        ]})


def _runner(tmp_path, **kwargs) -> TimedRunner:
    pipeline = pipeline_of('toy', '--work-dir', str(tmp_path), '--jobs', '2',
                           '--progress-interval', '1000')
    return TimedRunner(pipeline.spec, pipeline.loader, **kwargs)


def test_a_stage_starts_after_its_upstream_and_two_run_at_once(tmp_path):
    runner = _runner(tmp_path)
    plan = _plan(str(tmp_path))
    runner.run(plan)
    started = {key: t for what, key, t in runner.events if what == 'start'}
    ended = {key: t for what, key, t in runner.events if what == 'end'}
    assert set(started) == set(ended) == {st.key for st in plan.stages}
    keys = {st.work_dir: st.key for st in plan.stages}
    for st in plan.stages:
        for upstream in st.upstream:
            assert started[st.key] >= ended[keys[upstream]], st.key
    # jobs 2: the foundation and stage 1a (both ready) overlap
    assert started['adapt_teacher'] < ended['student_foundation']
    # the first ready stage of the plan starts first
    assert [key for what, key, _ in runner.events if what == 'start'][:2] \
        == ['student_foundation', 'adapt_teacher']
    assert runner.of_plan(plan.per_seed[0][2]) == ' (stage 4 of 5)'


def test_after_a_failed_stage_none_starts(tmp_path):
    runner = _runner(tmp_path, fail='adapt_teacher')
    with pytest.raises(RuntimeError, match='adapt_teacher failed'):
        runner.run(_plan(str(tmp_path)))
    started = [key for what, key, _ in runner.events if what == 'start']
    assert 'adapt_teacher_selftrain' not in started
    assert 'distill' not in started
