# Copyright (c) mmcast contributors. All rights reserved.
"""What a stage cost (:mod:`~mmcast.apis.pipeline.stage_cost`): the runner's
own ``_run`` starts each command under the stage guard, as for a real
stage, and the processor seconds of the whole process tree (a grandchild
that burns the processor included), the wall seconds, the sum over a
stage's runs (a failed one too) land in the stage's cost file and its
results row; the results table sums them per seed and for the
pre-trainings."""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest

import mmcast.apis.pipeline.runner as runner_module
from conftest import REPO_ROOT, pipeline_of
from mmcast.apis.pipeline import Stage, StageRunner
from mmcast.apis.pipeline.stage_cost import COST_FILE, read_cost
from mmcast.apis.pipeline.stage_failure import StageFailed
from mmcast.evaluation.results_table import CHAIN_ROWS

# a child that starts a grandchild burning ~0.6 s of processor time, then
# exits with the status given as its argument
BURN = ('import subprocess, sys; subprocess.run([sys.executable, "-c", '
        '"import time\\nt = time.process_time()\\n'
        'while time.process_time() - t < 0.6: pass"], check=True); '
        'sys.exit(int(sys.argv[1]))')
# costs are kept to 0.1 s: a sum of two rounded readings may lose up to half
# of that step, and 1.1 + 0.6 is 1.7000000000000002 in floating point
ROUNDING_S = 0.05


# a pipeline whose stage burns the processor until the pipeline is killed,
# its cost read every 0.2 s
KILLED_PIPELINE = '''
import sys
sys.path[:0] = [{repo!r}, {tests!r}, {here!r}]
from mmcast.apis.pipeline import stage_cost
stage_cost.SNAPSHOT_S = 0.2
from test_stage_cost import _runner, _stage
import pathlib
tmp_path = pathlib.Path({tmp!r})
_runner(tmp_path)._run(_stage(tmp_path), [sys.executable, '-c',
                                          'while True: pass'])
'''


def _stage(tmp_path) -> Stage:
    work_dir = osp.join(str(tmp_path), 'work', 'seed0', 'finetune')
    return Stage('finetune', '[seed 0] [stage 3]', 'c.py', work_dir,
                 max_iters=1, seed=0)


def _runner(tmp_path) -> StageRunner:
    pipeline = pipeline_of('toy', '--work-dir', str(tmp_path / 'work'))
    return StageRunner(pipeline.spec, pipeline.loader)


def test_a_stage_costs_its_process_tree_summed_over_its_runs(tmp_path):
    stage, runner = _stage(tmp_path), _runner(tmp_path)
    assert read_cost(stage.work_dir) == {}
    os.makedirs(stage.work_dir)
    runner._run(stage, [sys.executable, '-c', BURN, '0'])
    first = read_cost(stage.work_dir)
    # the grandchild's 0.6 s are counted (the guard and the child alone
    # take a few hundredths), and the wall time holds the processor's
    assert 0.6 <= first['cpu_s'] <= first['wall_s'] + 0.2, first
    # a failed run still cost what it spent, and adds to the first
    with pytest.raises(StageFailed):
        runner._run(stage, [sys.executable, '-c', BURN, '3'])
    second = read_cost(stage.work_dir)
    assert second['cpu_s'] >= first['cpu_s'] + 0.6 - ROUNDING_S, (
        first, second)
    assert second['wall_s'] > first['wall_s']
    with open(osp.join(stage.work_dir, COST_FILE)) as f:
        assert set(json.load(f)) == {'cpu_s', 'wall_s'}


def test_a_pipeline_killed_outright_keeps_its_stages_seconds_so_far(
        tmp_path):
    stage = _stage(tmp_path)
    os.makedirs(stage.work_dir)
    script = tmp_path / 'pipeline.py'
    script.write_text(KILLED_PIPELINE.format(
        repo=REPO_ROOT, tests=osp.join(REPO_ROOT, 'tests'),
        here=osp.dirname(__file__), tmp=str(tmp_path)))
    pipeline = subprocess.Popen([sys.executable, str(script)], cwd=REPO_ROOT)
    deadline = time.time() + 120
    while read_cost(stage.work_dir).get('cpu_s', 0) < 1.0:
        assert pipeline.poll() is None and time.time() < deadline
        time.sleep(0.1)
    pipeline.send_signal(signal.SIGKILL)  # no run ends: nothing is added
    pipeline.wait()
    killed = read_cost(stage.work_dir)
    assert 1.0 <= killed['cpu_s'] <= killed['wall_s'] + 0.2, killed
    # the next run adds its own seconds to the killed run's last reading
    _runner(tmp_path)._run(stage, [sys.executable, '-c', BURN, '0'])
    after = read_cost(stage.work_dir)
    assert after['cpu_s'] >= killed['cpu_s'] + 0.6 - ROUNDING_S, (
        killed, after)
    with open(osp.join(stage.work_dir, COST_FILE)) as f:
        assert set(json.load(f)) == {'cpu_s', 'wall_s'}


def test_the_results_row_carries_the_stages_cost(tmp_path, monkeypatch):
    stage, runner = _stage(tmp_path), _runner(tmp_path)
    os.makedirs(stage.work_dir)
    runner._run(stage, [sys.executable, '-c', BURN, '0'])
    # the row of a trained stage: metrics from its log (none here: no
    # MMDetection ran), cost from its file
    monkeypatch.setattr(runner_module, 'read_metrics',
                        lambda work_dir, metric: dict(segm_AP=30.0,
                                                      segm_AP50=50.0))
    results = {}
    runner._record(0, stage, results)
    assert results['finetune']['cpu_s'] == read_cost(stage.work_dir)['cpu_s']
    assert results['finetune']['cpu_s'] >= 0.6


def test_the_footer_sums_each_seeds_chain_and_the_pretrainings(tmp_path):
    pipeline = pipeline_of('toy', '--work-dir', str(tmp_path), '--seeds',
                           '0', '1')
    # stage s of seed k cost 10^s + k core-seconds: every sum below is
    # distinct, so a row left out or counted twice shows
    keys = list(CHAIN_ROWS) + ['teacher_pretrained', 'guided_distillation']
    per_seed = {k: {key: dict(segm_AP=30.0, segm_AP50=50.0,
                              cpu_s=10.0**s + k, wall_s=2 * (10.0**s + k))
                    for s, key in enumerate(keys)} for k in (0, 1)}
    # seed 1's stage 3 made on another processor
    for k in (0, 1):
        for key in keys:
            per_seed[k][key]['machine'] = 'AMD EPYC (family 23, model 49)'
    per_seed[1]['finetune']['machine'] = 'AMD EPYC (family 26, model 2)'
    pipeline.write_table(per_seed, pretraining_cost=dict(
        toy_foundation=dict(cpu_s=700.0, wall_s=710.0),
        student_foundation=dict(cpu_s=300.0, wall_s=305.0)))
    with open(tmp_path / 'results.json') as f:
        results = json.load(f)
    assert results['pretraining_cpu_s'] == 1000.0
    assert results['cost']['chain_cpu_s'] == {'0': 11111.0, '1': 11116.0}
    assert results['cost']['cpu_s'] == {'0': 1111111.0, '1': 1111118.0}
    assert results['cost']['wall_s'] == {'0': 2222222.0, '1': 2222236.0}
    # every per-seed entry of every row keeps its own cost
    for key in keys:
        for k in ('0', '1'):
            assert results['rows'][key]['per_seed'][k]['cpu_s'] > 0
    with open(tmp_path / 'results.md') as f:
        table = f.read()
    assert 'seed 0: chain 11111 core-s, all rows 1111111 core-s' in table
    assert 'pre-trainings (toy_foundation, student_foundation) 1000 ' \
           'core-s; measured on 2 machines: AMD EPYC (family 23, model 49) ' \
           '(13 rows), AMD EPYC (family 26, model 2) (1 row)' in table
    assert results['cost']['machines'] == {
        'AMD EPYC (family 23, model 49)': 13,
        'AMD EPYC (family 26, model 2)': 1}
    # made on one machine: named once
    per_seed[1]['finetune']['machine'] = 'AMD EPYC (family 23, model 49)'
    pipeline.write_table(per_seed)
    with open(tmp_path / 'results.md') as f:
        assert 'measured on AMD EPYC (family 23, model 49)\n' in f.read()


def test_no_cost_no_footer(tmp_path):
    """Rows from before costs were kept: no cost line, no cost keys."""
    pipeline = pipeline_of('toy', '--work-dir', str(tmp_path))
    per_seed = {0: {key: dict(segm_AP=30.0, segm_AP50=50.0)
                    for key in CHAIN_ROWS}}
    pipeline.write_table(per_seed, pretraining_cost={'toy_foundation': {}})
    with open(tmp_path / 'results.json') as f:
        results = json.load(f)
    assert 'cost' not in results and 'pretraining_cpu_s' not in results
    with open(tmp_path / 'results.md') as f:
        assert 'core-s' not in f.read()
