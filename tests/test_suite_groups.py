# Copyright (c) mmcast contributors. All rights reserved.
"""How ``make test`` splits the suite over its two pytest-xdist workers
(``tests/conftest.py``): the groups of synthetic test modules collected in
a subprocess with a copy of the suite's conftest, the order in which they
are handed out, and, run on two workers, that each group's tests ran on
one worker (the environment's pytest and pytest-xdist must agree on how a
group is named); and that it runs mmcast's tests and every project's."""
import collections
import glob
import json
import re
import os
import os.path as osp
import shutil
import subprocess
import sys

from conftest import REPO_ROOT

# each test appends '<test id> <worker>' to the file WORKERS_LOG names
MODULES = {
    'test_fast.py': '''
import os

import pytest


@pytest.fixture(autouse=True)
def record(request):
    with open(os.environ['WORKERS_LOG'], 'a') as f:
        f.write(request.node.name + ' ' +
                os.environ.get('PYTEST_XDIST_WORKER', 'none') + chr(10))


@pytest.fixture(scope='module', params=['a', 'b'])
def run(request):
    return request.param


@pytest.fixture(scope='module')
def built():
    return 1


@pytest.fixture
def per_test():
    return 2


def test_uses_run(run):
    pass


@pytest.mark.parametrize('run', ['b'], indirect=True)
def test_indirect(run):
    pass


def test_uses_built(built, per_test):
    pass


@pytest.mark.parametrize('x', [1, 2])
def test_alone(x, per_test):
    pass


@pytest.mark.xdist_group('own')
def test_named(run):
    pass
''',
    'test_slow.py': '''
import pytest

pytestmark = pytest.mark.slow_fixture(3)


def test_slow():
    pass
''',
    'test_slower.py': '''
import pytest

pytestmark = pytest.mark.slow_fixture(9)


def test_slower():
    pass
''',
}
# prints [nodeid, group] per collected test, in collection order
COLLECT = '''
import json, sys
import pytest


class Groups:
    def pytest_collection_finish(self, session):
        print(json.dumps([[i.nodeid, i.get_closest_marker('xdist_group')
                           .args[0] if i.get_closest_marker('xdist_group')
                           else None] for i in session.items]))


sys.exit(pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider',
                      '.'], plugins=[Groups()]))
'''


def _make_test_command() -> tuple:
    """``(pytest options, test folders)`` of ``make test``."""
    with open(osp.join(REPO_ROOT, 'Makefile')) as f:
        words = re.search(r'pytest -q -n \$\(TEST_WORKERS\) (.*)\n',
                          f.read()).group(1).split()
    folders = [w for w in words if osp.isdir(osp.join(REPO_ROOT, w))]
    return words[:len(words) - len(folders)], folders


def test_make_test_runs_every_test_folder():
    """mmcast's ``tests`` and the ``tests`` of every project."""
    projects = sorted(
        osp.relpath(p, REPO_ROOT)
        for p in glob.glob(osp.join(REPO_ROOT, 'projects', '*', 'tests')))
    assert 'projects/swinmtl/tests' in projects
    assert _make_test_command()[1] == ['tests'] + projects


def _write_suite(tmp_path) -> dict:
    shutil.copy(osp.join(REPO_ROOT, 'tests', 'conftest.py'), tmp_path)
    for name, text in MODULES.items():
        (tmp_path / name).write_text(text)
    return dict(os.environ, WORKERS_LOG=str(tmp_path / 'workers.log'))


def test_groups_keep_module_fixtures_together_slow_first(tmp_path):
    env = _write_suite(tmp_path)
    proc = subprocess.run([sys.executable, '-c', COLLECT], cwd=tmp_path,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    items = json.loads(next(line for line in proc.stdout.splitlines()
                            if line.startswith('[[')))
    groups = dict(items)
    # the modules marked slow first, the longest first
    assert [n for n, _ in items[:2]] == ['test_slower.py::test_slower',
                                         'test_slow.py::test_slow']
    fast = 'test_fast.py'
    # a module fixture's tests together, one group per parameter; the
    # indirect parameter 'b' with the fixture's own 'b'
    assert groups[f'{fast}::test_uses_run[a]'] == f'{fast}::run=a'
    assert groups[f'{fast}::test_uses_run[b]'] == \
        groups[f'{fast}::test_indirect[b]'] == f'{fast}::run=b'
    assert groups[f'{fast}::test_uses_built'] == fast
    # no module fixture: no group, each test is scheduled on its own
    assert groups[f'{fast}::test_alone[1]'] is None
    assert groups[f'{fast}::test_alone[2]'] is None
    # a group the test names is kept
    assert groups[f'{fast}::test_named[a]'] == 'own'


def test_two_workers_run_each_group_on_one_worker(tmp_path):
    """Under ``make test``'s options each group's tests ran on one worker,
    and both workers ran tests."""
    env = _write_suite(tmp_path)
    options = _make_test_command()[0]
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         '-n', '2', '--basetemp', str(tmp_path / 'base')] + options + ['.'],
        cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    ran = dict(line.split() for line in
               (tmp_path / 'workers.log').read_text().splitlines())
    assert len(ran) == 8 and set(ran.values()) == {'gw0', 'gw1'}, ran
    workers = collections.defaultdict(set)
    for test, worker in ran.items():
        group = {'test_uses_run[a]': 'a', 'test_named[a]': 'own',
                 'test_named[b]': 'own', 'test_uses_built': 'built'}.get(
                     test, 'b' if test.endswith('[b]') else test)
        workers[group].add(worker)
    assert all(len(w) == 1 for w in workers.values()), dict(workers)


def test_too_little_disk_stops_the_suite_at_once(tmp_path, monkeypatch):
    import pytest

    import conftest
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(conftest.shutil, 'disk_usage', lambda path: usage.
                        _replace(free=conftest.FREE_DISK_GIB * 2**30 - 1))
    monkeypatch.delenv('PYTEST_XDIST_WORKER', raising=False)
    option = collections.namedtuple('Option', 'basetemp')
    session = collections.namedtuple('Session', 'config')(
        collections.namedtuple('Config', 'option')(
            option(str(tmp_path / 'not' / 'yet'))))
    with pytest.raises(pytest.exit.Exception,
                       match=f'^{tmp_path}: .* GiB free; the test suite '):
        conftest.pytest_sessionstart(session)
    monkeypatch.setattr(conftest.shutil, 'disk_usage', lambda path: usage.
                        _replace(free=conftest.FREE_DISK_GIB * 2**30))
    conftest.pytest_sessionstart(session)  # enough: goes on
