# Copyright (c) mmcast contributors. All rights reserved.
"""The plan of a run (``Planner``), made from its spec and configs alone.

A toy run of two seeds, CAST and Guided Distillation, the students'
backbone pre-trained and stage 2 taught by the ensemble of 1a and 1b: its
stages are frozen, each names as upstream the work dirs of the stages the
stage graph makes it from, and each hand-off key gets the final checkpoint
of its source stage. ``--iters`` and ``--stage-cfg-options`` set a stage's
length, and the next stage's hand-off follows. Planning keeps no state, and
two runs planned at once in threads, each with its own data root, get the
plans they get alone while the process' environment, working directory and
umask never change. Nothing is trained.
"""
import dataclasses
import os
import os.path as osp
import threading

import pytest

from mmcast.apis.pipeline import ConfigLoader, Planner, RunSpec, parse_args
from mmcast.apis.pipeline.launchers import cfg_options_args
from mmcast.apis.pipeline.stage_graph import TEACHER0, stage_graph

TOY_RUN = ['--seeds', '0', '1', '--methods', 'cast', 'gd', '--student-init',
           'source-pretrained', '--distill-teacher', 'ensemble']


def spec_of(work_dir, *options) -> RunSpec:
    return RunSpec.from_args(parse_args(['toy', '--work-dir', str(work_dir),
                                         *options]))


def plan_of(spec: RunSpec):
    return Planner(spec, ConfigLoader(spec)).plan()


def rendered(plan) -> list:
    """Each stage as the runner launches it."""
    return [(st.key, st.seed, st.config, st.work_dir, st.max_iters,
             st.checkpoint, cfg_options_args(st.overrides))
            for st in plan.stages]


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    """The toy run's spec and plan."""
    spec = spec_of(tmp_path_factory.mktemp('plan') / 'run', *TOY_RUN)
    return spec, plan_of(spec)


def test_stages_are_frozen(toy):
    _, plan = toy
    assert len(plan.stages) == 2 + 2 * 7
    for stage in plan.stages:
        with pytest.raises(dataclasses.FrozenInstanceError):
            stage.max_iters = 1
        with pytest.raises(dataclasses.FrozenInstanceError):
            stage.overrides = stage.overrides + stage.overrides
        with pytest.raises(dataclasses.FrozenInstanceError):
            stage.overrides.items = ()
        assert isinstance(stage.upstream, tuple)


def test_upstream_is_the_graphs(toy):
    spec, plan = toy
    graph = stage_graph()
    planned = {st.work_dir for st in plan.stages}
    checked = 0
    for stage in plan.stages:
        keys = graph[stage.key].upstream
        # the stages of the run with those keys: the shared ones, or the
        # same seed's
        expected = {st.work_dir for st in plan.stages if st.key in keys and
                    st.seed in (None, stage.seed)}
        assert {u for u in stage.upstream if u in planned} == expected, \
            stage.label
        assert len(stage.upstream) == len(keys)
        for u in stage.upstream:  # one the run does not have: named as such
            if u not in planned:
                assert osp.basename(u) in keys
                assert osp.dirname(u) in (spec.work_dir, osp.dirname(
                    stage.work_dir))
        checked += bool(expected)
    assert checked == 2 * 7


def test_handoffs_are_the_sources_final_checkpoints(toy):
    _, plan = toy
    graph = stage_graph()
    assert plan.first[0].key == 'toy_foundation'
    assert plan.teacher0 == plan.first[0].final
    assert plan.teacher0.endswith(f'iter_{plan.first[0].max_iters}.pth')
    handoffs = 0
    for seed, stages in plan.per_seed.items():
        finals = {st.key: st.final for st in stages}
        finals[TEACHER0] = plan.teacher0
        for stage in stages:
            for config_key, source in graph[stage.key].handoffs:
                if (stage.key, config_key) == ('distill',
                                               'model.teacher_checkpoint'):
                    continue  # the ensemble: below
                assert stage.overrides.get(config_key) == finals[source]
                handoffs += 1
        stage_2 = plan.seed_stage(seed, 'distill')
        assert stage_2.overrides.get('model.teacher_checkpoint') == [
            plan.seed_stage(seed, 'adapt_teacher').final,
            plan.seed_stage(seed, 'adapt_teacher_selftrain').final
        ]
        assert plan.seed_stage(seed, 'teacher_pretrained').checkpoint == \
            plan.teacher0
        assert stage_2.overrides.get(
            'model.student.backbone.init_cfg.checkpoint') == \
            plan.student_backbone == plan.first[1].final
    assert handoffs == 2 * 5


def test_iters_set_stage_2_and_the_baseline(tmp_path):
    spec = spec_of(tmp_path / 'run', '--iters', 'distill=7')
    loader = ConfigLoader(spec)
    plan = Planner(spec, loader).plan()
    stage_2 = plan.seed_stage(0, 'distill')
    assert stage_2.max_iters == 7
    value = stage_2.overrides.get('train_cfg.max_iters')
    assert value == 7 and type(value) is int
    assert stage_2.final == osp.join(stage_2.work_dir, 'iter_7.pth')
    merged = loader.load(stage_2)
    assert merged.train_cfg.max_iters == 7 == merged.param_scheduler.end
    finetune = plan.seed_stage(0, 'finetune')
    assert finetune.max_iters == loader.config_iters(finetune.config)
    assert finetune.overrides.get('model.init_cfg.checkpoint') == \
        stage_2.final
    assert plan.seed_stage(0, 'supervised_student').max_iters == \
        7 + finetune.max_iters


def test_a_stage_option_sets_the_stages_length(tmp_path):
    spec = spec_of(tmp_path / 'run', '--iters', 'distill=7',
                   '--stage-cfg-options', 'distill:train_cfg.max_iters=9')
    loader = ConfigLoader(spec)
    plan = Planner(spec, loader).plan()
    stage_2 = plan.seed_stage(0, 'distill')
    assert stage_2.max_iters == 9
    assert stage_2.overrides.get('train_cfg.max_iters') == 9
    merged = loader.load(stage_2)
    assert merged.train_cfg.max_iters == 9 == merged.param_scheduler.end
    assert plan.seed_stage(0, 'finetune').overrides.get(
        'model.init_cfg.checkpoint') == osp.join(stage_2.work_dir,
                                                 'iter_9.pth')


def test_planning_keeps_no_state(toy):
    spec, plan = toy
    loader = ConfigLoader(spec)
    planner = Planner(spec, loader)
    first = planner.plan()
    assert first == planner.plan() == Planner(spec, loader).plan() == plan
    assert rendered(first) == rendered(plan)


def umask() -> int:
    """The process' umask, as the kernel tells it (setting it to read it
    would change it)."""
    with open('/proc/self/status', encoding='ascii') as f:
        for line in f:
            if line.startswith('Umask:'):
                return int(line.split()[1], 8)
    raise AssertionError('no Umask in /proc/self/status')


def process_state() -> tuple:
    return dict(os.environ), os.getcwd(), umask()


def difference(state, before) -> str:
    """What of ``state`` is not as ``before``, in short."""
    if isinstance(state, str):
        return state
    env, cwd, mask = state
    keys = sorted(k for k in set(env) | set(before[0])
                  if env.get(k) != before[0].get(k))
    return (f'environment {keys} ' * bool(keys) +
            f'cwd {cwd} ' * (cwd != before[1]) +
            f'umask {mask:o}' * (mask != before[2]))


def test_two_runs_planned_at_once(tmp_path, monkeypatch):
    """Two threads plan two runs (their own data root, so their own stage
    environment) while a third samples the process' environment, working
    directory and umask until both are done."""
    monkeypatch.chdir(tmp_path)  # not the repository, where stages run
    # a toy root in os.environ that neither run's configs may read
    monkeypatch.setenv('MMCAST_TOY_ROOT', str(tmp_path / 'decoy') + '/')
    specs = [spec_of(tmp_path / f'run{i}', *TOY_RUN, '--data-root',
                     str(tmp_path / f'data{i}')) for i in range(2)]
    assert specs[0].env['MMCAST_TOY_ROOT'] != specs[1].env['MMCAST_TOY_ROOT']
    alone = [plan_of(spec) for spec in specs]
    before = process_state()

    start = threading.Barrier(3)
    planned = threading.Event()
    plans, loaders, errors, changed, samples = {}, {}, [], [], [0]

    def plan(i: int) -> None:
        try:
            loaders[i] = ConfigLoader(specs[i])
            start.wait()
            plans[i] = Planner(specs[i], loaders[i]).plan()
        except BaseException as error:  # noqa: B036 - told below
            errors.append(error)

    def sample() -> None:
        start.wait()
        while not planned.is_set():
            try:
                state = process_state()
            except BaseException as error:  # noqa: B036 - e.g. os.environ
                state = repr(error)  # changed while it was copied
            samples[0] += 1
            if state != before:
                changed.append(difference(state, before))

    threads = [threading.Thread(target=plan, args=(i, )) for i in range(2)]
    sampler = threading.Thread(target=sample)
    for thread in threads + [sampler]:
        thread.start()
    try:
        for thread in threads:
            thread.join(timeout=300)
    finally:
        planned.set()
        sampler.join()
    assert not errors, errors
    assert not changed, changed[0]
    assert samples[0] > 10
    for i, spec in enumerate(specs):
        assert plans[i] == alone[i]
        assert rendered(plans[i]) == rendered(alone[i])
        root = spec.env['MMCAST_TOY_ROOT']
        assert root == str(tmp_path / f'data{i}' / 'toy') + '/'
        for stage in plans[i].per_seed[0]:
            cfg = loaders[i].read(stage.config)
            assert cfg.data_root == root, stage.label
            assert cfg.test_evaluator[0].ann_file.startswith(root)
        assert plans[i].first[0].overrides.get(
            'train_dataloader.dataset.data_root') == \
            spec.toy.source_root + '/'
    assert process_state() == before


def test_a_pretrained_teacher_given_to_the_toy_is_said_unused(tmp_path):
    """The toy pre-trains its own θ_T^0: a given checkpoint is not used,
    and the plan says so (the pipeline prints its notes) rather than
    dropping it without a word."""
    given = str(tmp_path / 'teacher0.pth')
    plan = plan_of(spec_of(tmp_path / 'run', '--pretrained-teacher', given))
    assert plan.teacher0 != given
    assert plan.teacher0.startswith(str(tmp_path / 'run' / 'toy_foundation'))
    said = [n for n in plan.notes if given in n]
    assert len(said) == 1 and 'is not used' in said[0], plan.notes
    assert not any('is not used' in n
                   for n in plan_of(spec_of(tmp_path / 'run2')).notes)
