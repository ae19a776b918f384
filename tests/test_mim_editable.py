# Copyright (c) mmcast contributors. All rights reserved.
"""``mim search / download / train mmcast`` against the environment that runs
the suite (``make install``: ``pip install -e .``, a PEP 660 editable install
whose site-packages holds an import hook and no ``mmcast`` folder).

mim and MMEngine look for ``<package>/.mim`` by joining the distribution's
location with the package name or the first line of ``top_level.txt``;
``setup.py`` writes the checkout's ``mmcast`` folder there. The commands run
as subprocesses with the environment's own ``mim`` and no ``PYTHONPATH``, so
they see the install and not the working tree this suite imports.
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, config_names, load_script, toy_cfg_options

MIM = osp.join(osp.dirname(sys.executable), 'mim')
SPLIT = 'annotations/semi/instancesonly_filtered_gtFine_train.1@25.json'
LOOKUP = '''
import importlib.util, json, os.path as osp
from mim.utils import get_installed_path
from mmengine.utils import get_installed_path as mmengine_installed_path
print(json.dumps({
    'mim': get_installed_path('mmcast'),
    'mmengine': mmengine_installed_path('mmcast'),
    'imported': osp.dirname(importlib.util.find_spec('mmcast').origin)}))
'''


def _installed_env() -> dict:
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    env.pop('PYTHONPATH', None)
    return env


def _run(cmd: list, cwd: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          env=_installed_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def lookup(tmp_path_factory) -> dict:
    """mim's and MMEngine's path of the installed mmcast, and the folder that
    ``import mmcast`` would load, from a fresh interpreter outside the
    checkout."""
    cwd = str(tmp_path_factory.mktemp('lookup'))
    out = _run([sys.executable, '-c', LOOKUP], cwd)
    return json.loads(out.strip().splitlines()[-1])


def _model_names() -> list:
    from modelindex.load_model_index import load
    index = load(osp.join(REPO_ROOT, 'model-index.yml'))
    return [m.name for m in index.models]


def test_package_lookup_finds_the_imported_package_and_its_mim_files(lookup):
    for tool in ('mim', 'mmengine'):
        path = lookup[tool]
        assert osp.isdir(path), f'{tool} looks for mmcast in missing {path}'
        assert osp.samefile(path, lookup['imported']), (tool, lookup)
        for name in ('model-index.yml', 'configs/mmcast/cast/metafile.yml',
                     'tools/train.py', 'tools/test.py'):
            assert osp.isfile(osp.join(path, '.mim', name)), (tool, name)


def test_mim_search_lists_every_config(tmp_path):
    out = _run([MIM, 'search', 'mmcast'], str(tmp_path))
    listed = re.findall(r'^config id: (\S+)$', out, re.M)
    assert sorted(listed) == sorted(n.lower() for n in _model_names())


def test_mim_download_writes_only_the_merged_config(tmp_path):
    dest = tmp_path / 'dest'
    name = config_names()['supervised_student_toy']
    _run([MIM, 'download', 'mmcast', '--config', name, '--dest', str(dest)],
         str(tmp_path))
    # no weights published: the config (bases merged) is all there is
    assert sorted(os.listdir(dest)) == [f'{name}.py']
    assert '_base_' not in (dest / f'{name}.py').read_text()


def test_mim_train_runs_the_installed_train_script(lookup, toy_data_root,
                                                   tmp_path):
    work_dir = str(tmp_path / 'work')
    opts = toy_cfg_options(toy_data_root, work_dir) + [
        f'train_dataloader.dataset.ann_file={SPLIT}',
        'train_cfg.max_iters=1', 'train_cfg.val_interval=100',
        'param_scheduler.end=1', 'default_hooks.checkpoint.interval=1'
    ]
    log = _run([MIM, 'train', 'mmcast', 'supervised_student_toy.py',
                '--work-dir', work_dir, '--cfg-options'] + opts,
               str(tmp_path))
    assert osp.join(lookup['mim'], '.mim', 'tools', 'train.py') in log
    assert osp.isfile(osp.join(work_dir, 'iter_1.pth'))


def test_editable_metadata_names_the_checkout_then_the_package(tmp_path):
    setup_py = load_script(osp.join(REPO_ROOT, 'setup.py'))
    top_level = tmp_path / 'top_level.txt'
    top_level.write_text('mmcast\n')
    setup_py.point_top_level_at_checkout(str(tmp_path))
    setup_py.point_top_level_at_checkout(str(tmp_path))  # a rebuild
    first, *names = top_level.read_text().splitlines()
    assert osp.samefile(first, osp.join(REPO_ROOT, 'mmcast'))
    assert names == ['mmcast']
    # what mim joins onto an editable install's location (site-packages)
    assert osp.join(str(tmp_path / 'site-packages'), first) == first

    top_level.write_text('mmdet\n')
    with pytest.raises(ValueError, match=r"top_level\.txt lists \['mmdet'\]"):
        setup_py.point_top_level_at_checkout(str(tmp_path))


def test_a_built_wheel_ships_the_split_lists_and_configs(tmp_path):
    """``pip install .`` (no ``-e``) gets the published split lists that
    configs and ``tools/split_semi.py`` find by default, and mim's files;
    nothing of ``projects/``."""
    import shutil
    import zipfile
    src = tmp_path / 'src'  # setuptools builds in the source tree (build/)
    shutil.copytree(REPO_ROOT, src, ignore=shutil.ignore_patterns(
        '.*', 'build', 'work_dirs', 'data', 'site', 'checkpoints',
        '*.egg-info', '__pycache__'))
    proc = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
         '--no-build-isolation', str(src), '-w', str(tmp_path)],
        capture_output=True, text=True, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'would be ignored' not in proc.stderr  # every data folder declared
    wheel, = tmp_path.glob('mmcast-*.whl')
    names = set(zipfile.ZipFile(wheel).namelist())
    splits = osp.join(REPO_ROOT, 'mmcast', 'datasets', 'splits')
    shipped = [osp.relpath(osp.join(d, f), REPO_ROOT)
               for d, _, files in os.walk(splits) for f in files
               if f.endswith(('.txt', '.md'))]
    assert len(shipped) >= 4 and set(shipped) <= names, set(shipped) - names
    assert any(n.startswith('mmcast/.mim/configs/mmcast/') for n in names)
    # the projects (SwinMTL) stay in the repository, as MMDetection's
    assert not [n for n in names if n.startswith('projects/') or
                'swinmtl' in n.lower()]
