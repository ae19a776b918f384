# Copyright (c) mmcast contributors. All rights reserved.
"""The fork server (:mod:`~mmcast.apis.pipeline.stage_forkserver`, its
client :mod:`~mmcast.apis.pipeline.forked_stages`): a forked script runs
as ``python script args`` would (its arguments, ``__main__``, folder,
process group, command line, exit status, traceback, a fresh process's
random state), a forked toy stage trains the weights a new process
trains, a stop stops the stage's group, the stage ends with the pipeline's
connection and with the server, and a server that is gone leaves the
runner to start new processes. One server (its imports once) serves the
module; the test that kills it runs last."""
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import torch

from conftest import REPO_ROOT, pipeline_of, toy_cfg_options
from mmcast.apis.pipeline import Stage, StageRunner
from mmcast.apis.pipeline.forked_stages import (ForkedStage,
                                                StageForkServer, forks_stages)
from mmcast.apis.pipeline.launchers import (LaunchConfig, printable,
                                            stage_command)

# what a script sees of its process, as JSON in the file of its 1st
# argument; then it exits with the status of its 2nd
REPORT = '''
import json, os, random, sys
import numpy as np
import torch

def main():
    with open('/proc/self/cmdline', 'rb') as f:
        cmdline = f.read().replace(b'\\0', b' ').decode().strip()
    with open(sys.argv[1], 'w') as f:
        json.dump(dict(argv=sys.argv, name=__name__, cwd=os.getcwd(),
                       path0=sys.path[0], pid=os.getpid(),
                       pgid=os.getpgid(0), cmdline=cmdline,
                       random=random.random(),
                       numpy=float(np.random.random()),
                       torch=torch.rand(3).tolist()), f)
    print('report written', flush=True)
    sys.exit(int(sys.argv[2]))

main()
'''
FAIL = '''
def load(name):
    raise ValueError(f'no such thing: {name}')

load('thing')
'''
# writes its pid and a child's (the same group), then sleeps
SLEEP = '''
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
with open(sys.argv[1], 'w') as f:
    f.write(f'{os.getpid()} {child.pid}')
time.sleep(60)
'''
BURN = '''
import subprocess, sys
subprocess.run([sys.executable, '-c', 'import time\\nt = time.process_time()'
                '\\nwhile time.process_time() - t < 0.6: pass'], check=True)
'''


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """A fork server with this process's environment."""
    log = tmp_path_factory.mktemp('fork_server') / 'fork_server.log'
    server = StageForkServer(dict(os.environ), str(log))
    yield server
    server.close()


def _script(tmp_path, text: str) -> str:
    path = tmp_path / 'script.py'
    path.write_text(text)
    return str(path)


def _start(server, script: str, *args: str, log=None) -> ForkedStage:
    cmd = [sys.executable, script, *map(str, args)]
    stage = server.start(cmd, str(log or osp.join(osp.dirname(script),
                                                  'stage.log')),
                         printable(cmd))
    assert stage is not None, server.broken
    return stage


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not psutil.pid_exists(pid) or \
                psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


def test_a_forked_script_runs_as_python_would_run_it(server, tmp_path):
    script = _script(tmp_path, REPORT)
    reports = []
    for i in range(2):
        out = tmp_path / f'report{i}.json'
        stage = _start(server, script, out, 3)
        returncode, cpu_s = stage.wait_with_cpu_time()
        assert returncode == 3 and cpu_s >= 0
        reports.append(json.loads(out.read_text()))
    first = reports[0]
    assert first['argv'] == [script, str(tmp_path / 'report0.json'), '3']
    assert first['name'] == '__main__'
    assert first['cwd'] == REPO_ROOT
    assert first['path0'] == str(tmp_path)
    # the leader of its own group, not the guard, the server or the test
    assert first['pgid'] == first['pid'] != os.getpid()
    assert reports[1]['pid'] == stage.stage_pid
    # ps shows the command it runs
    assert first['cmdline'] == printable([
        sys.executable, script, str(tmp_path / 'report0.json'), '3'])
    # torch at a fresh process's default seed; Python's and NumPy's
    # generators seeded anew in each process, as in new ones
    assert first['torch'] == torch.rand(3, generator=torch.Generator()) \
        .tolist()
    assert reports[0]['random'] != reports[1]['random']
    assert reports[0]['numpy'] != reports[1]['numpy']
    assert (tmp_path / 'stage.log').read_text().count('report written') == 2


def test_an_exception_is_printed_from_the_script_and_exits_1(
        server, tmp_path):
    script = _script(tmp_path, FAIL)
    assert _start(server, script).wait_with_cpu_time()[0] == 1
    log = (tmp_path / 'stage.log').read_text()
    assert log.startswith('Traceback (most recent call last):\n'
                          f'  File "{script}", line 5, in <module>\n')
    assert log.rstrip().endswith('ValueError: no such thing: thing')
    assert 'runpy' not in log and 'stage_forkserver' not in log


def test_the_processor_seconds_of_what_the_stage_waited_for_count(
        server, tmp_path):
    returncode, cpu_s = _start(server, _script(tmp_path, BURN)) \
        .wait_with_cpu_time()
    assert returncode == 0 and cpu_s >= 0.6


def test_a_stop_stops_the_stage_and_its_group(server, tmp_path):
    pids = tmp_path / 'pids'
    stage = _start(server, _script(tmp_path, SLEEP), pids)
    while not pids.exists() or not pids.read_text():
        time.sleep(0.1)
    stage_pid, child_pid = map(int, pids.read_text().split())
    assert stage_pid == stage.stage_pid
    with pytest.raises(subprocess.TimeoutExpired):
        stage.wait(0.1)  # nobody has its answer yet
    stage.send_signal(signal.SIGTERM)
    assert stage.wait_with_cpu_time()[0] == 128 + signal.SIGTERM
    assert stage.wait(0) == 128 + signal.SIGTERM
    assert _gone(stage_pid, 10) and _gone(child_pid, 10)


def test_the_stage_ends_when_the_pipeline_closes_its_end(server, tmp_path):
    pids = tmp_path / 'pids'
    stage = _start(server, _script(tmp_path, SLEEP), pids)
    while not pids.exists() or not pids.read_text():
        time.sleep(0.1)
    stage._reader.close()
    stage._conn.close()  # as when the pipeline is killed
    assert all(_gone(int(pid), 10) for pid in pids.read_text().split())
    assert _gone(stage.pid, 10)  # the guard too


def test_a_forked_toy_stage_trains_what_a_new_process_trains(
        server, tmp_path, toy_data_root):
    """MMDetection's train.py on the labels-only toy config for 2
    iterations, forked and as a new process: the same weights."""
    weights = {}
    for start in ('fork', 'fresh'):
        work_dir = str(tmp_path / start)
        cmd = stage_command(
            'train', 'configs/mmcast/supervised_student_toy.py', work_dir,
            ['--cfg-options'] + toy_cfg_options(toy_data_root, work_dir) + [
                'train_dataloader.dataset.ann_file=annotations/semi/'
                'instancesonly_filtered_gtFine_train.1@25.json',
                'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                'default_hooks.checkpoint.interval=2', 'randomness.seed=0'],
            LaunchConfig())
        log = str(tmp_path / f'{start}.log')
        if start == 'fork':
            returncode = server.start(cmd, log, printable(cmd)) \
                .wait_with_cpu_time()[0]
        else:
            with open(log, 'w') as f:
                returncode = subprocess.run(cmd, cwd=REPO_ROOT, stdout=f,
                                            stderr=subprocess.STDOUT,
                                            env=server.env).returncode
        assert returncode == 0, open(log).read()[-3000:]
        weights[start] = torch.load(
            osp.join(work_dir, 'iter_2.pth'), map_location='cpu',
            weights_only=False)['state_dict']
    assert weights['fork'].keys() == weights['fresh'].keys()
    for key, value in weights['fork'].items():
        assert torch.equal(value, weights['fresh'][key]), key


def test_another_environment_is_refused_by_name(server, tmp_path):
    """A request whose environment is not the server's (which its imports
    read) is refused, naming the variables, and nothing starts."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with conn, conn.makefile('rb') as reader:
        conn.connect(server._address)
        conn.sendall(json.dumps(dict(
            argv=[_script(tmp_path, BURN)], log=str(tmp_path / 'x.log'),
            env=dict(server.env, OMP_NUM_THREADS='7', MMCAST_X='1'),
            title='x')).encode() + b'\n')
        reply = json.loads(reader.readline())
    assert reply == dict(refused='its environment is not the fork '
                         "server's (MMCAST_X, OMP_NUM_THREADS)")
    assert not (tmp_path / 'x.log').exists()
    assert server.broken is None


def test_a_stage_that_cannot_start_fails_and_the_server_goes_on(
        server, tmp_path):
    script = _script(tmp_path, BURN)
    assert _start(server, script, log=tmp_path / 'no' / 'stage.log') \
        .wait_with_cpu_time()[0] == 1
    assert _start(server, script).wait_with_cpu_time()[0] == 0


def test_what_forks_and_what_starts_new(tmp_path):
    script = _script(tmp_path, BURN)
    assert StageForkServer.forks([sys.executable, script, '--x'])
    assert not StageForkServer.forks([sys.executable, '-c', BURN])
    assert not StageForkServer.forks(['/usr/bin/env', script])
    assert forks_stages(LaunchConfig(), {}) == sys.platform.startswith(
        'linux') and not torch.cuda.is_available()
    assert not forks_stages(LaunchConfig(stage_start='fresh'), {})
    assert not forks_stages(LaunchConfig('pytorch', nproc=2), {})
    with pytest.raises(ValueError, match='stage_start'):
        LaunchConfig(stage_start='spawn')


def test_the_stages_end_with_the_server_and_new_ones_start_new(
        server, tmp_path):
    """The server killed: its stage is stopped by its guard, the next
    request finds no server, and the runner starts the stage as a new
    process under the stage guard, saying so once."""
    pids = tmp_path / 'pids'
    stage = _start(server, _script(tmp_path, SLEEP), pids)
    while not pids.exists() or not pids.read_text():
        time.sleep(0.1)
    server._proc.kill()
    assert stage.wait_with_cpu_time()[0] == 128 + signal.SIGTERM
    assert all(_gone(int(pid), 10) for pid in pids.read_text().split())
    assert server.start([sys.executable, _script(tmp_path, BURN)],
                        str(tmp_path / 'x.log'), 'x') is None
    assert server.broken.startswith('the fork server ended (exit -9')

    pipeline = pipeline_of('toy', '--work-dir', str(tmp_path / 'work'))
    runner = StageRunner(pipeline.spec, pipeline.loader)
    runner._fork_server = server
    said = []
    runner.say = said.append
    stage = Stage('finetune', '[seed 0] [stage 3]', 'c.py',
                  str(tmp_path / 'work' / 'finetune'), max_iters=1, seed=0)
    os.makedirs(stage.work_dir)
    for _ in range(2):
        runner._run(stage, [sys.executable, _script(tmp_path, BURN)])
    assert [line for line in said if 'new processes' in line] == [
        'stages start as new processes from now on: ' + server.broken]

