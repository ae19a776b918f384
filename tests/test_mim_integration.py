# Copyright (c) mmcast contributors. All rights reserved.
"""``mim search / download / train mmcast`` against a regular install.

The module fixture installs the working tree as a user gets it (a wheel built
by ``setup.py``, ``pip install --target``) and puts it first on
``PYTHONPATH``, so these tests check the copies in
``<site-packages>/mmcast/.mim`` whichever way the suite's own environment
installed mmcast; ``test_mim_editable.py`` checks the editable install that
``make install`` makes.
"""
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest

from conftest import (REPO_ROOT, config_names, is_config_alias, load_script,
                      toy_cfg_options)

MIM = osp.join(osp.dirname(sys.executable), 'mim')
SPLIT = 'annotations/semi/instancesonly_filtered_gtFine_train.1@25.json'


def _metafile_models() -> list:
    from modelindex.load_model_index import load
    return load(osp.join(REPO_ROOT, 'model-index.yml')).models


def _shipped_configs() -> set:
    """Configs under configs/mmcast/ (outside ``_base_``) that have bases."""
    found = set()
    for path in glob.glob(osp.join(REPO_ROOT, 'configs', 'mmcast', '**', '*.py'),
                          recursive=True):
        rel = osp.relpath(path, REPO_ROOT)
        if '_base_' in rel.split(os.sep) or is_config_alias(rel):
            continue  # an alias is not a model of its own
        with open(path, encoding='utf-8') as f:
            if re.search(r'^_base_\s*=', f.read(), re.M):
                found.add(rel)
    return found


@pytest.fixture(scope='module')
def site(tmp_path_factory) -> str:
    """The working tree built and installed (no deps) into a fresh folder."""
    src = tmp_path_factory.mktemp('src')
    skip = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim')
    for name in ('setup.py', 'MANIFEST.in', 'README.md', 'model-index.yml'):
        shutil.copy(osp.join(REPO_ROOT, name), src / name)
    for name in ('requirements', 'mmcast', 'configs', 'tools'):
        shutil.copytree(osp.join(REPO_ROOT, name), src / name, ignore=skip)
    target = str(tmp_path_factory.mktemp('site'))
    subprocess.run([
        sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
        '--no-build-isolation', '--no-index', '--target', target, str(src)
    ], check=True, capture_output=True)
    return target


def _mim(args: list, site: str, cwd: str) -> str:
    env = dict(os.environ, PYTHONWARNINGS='ignore',
               PYTHONPATH=os.pathsep.join([site] + [
                   p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
                   if p]))
    proc = subprocess.run([MIM] + args, cwd=cwd, capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_metafile_names_every_shipped_config_and_only_existing_ones():
    models = _metafile_models()
    paths = [m.config for m in models]
    assert len(set(paths)) == len(paths)
    assert sorted(set(paths)) == sorted(_shipped_configs())
    for model in models:
        assert model.name == osp.splitext(osp.basename(model.config))[0]
        assert model.in_collection in ('CAST', 'Guided Distillation')
        for result in model.results or []:  # only toy runs measured here
            assert result.dataset.startswith('Toy'), model.name


def test_install_packages_model_index_configs_and_tools(site):
    mim_dir = osp.join(site, 'mmcast', '.mim')
    for name in ('model-index.yml', 'tools/train.py', 'tools/test.py',
                 'configs/mmcast/cast/metafile.yml',
                 'configs/mmcast/_base_/toy_runtime.py'):
        assert osp.isfile(osp.join(mim_dir, name)), name
    assert not osp.islink(osp.join(mim_dir, 'configs'))  # copies, not links


def test_editable_install_links_mim_files_into_the_checkout(tmp_path):
    for name in ('setup.py', 'README.md', 'model-index.yml'):
        shutil.copy(osp.join(REPO_ROOT, name), tmp_path / name)
    for name in ('mmcast', 'configs', 'tools', 'requirements'):
        (tmp_path / name).mkdir()
    setup_py = load_script(str(tmp_path / 'setup.py'))
    mim_dir = str(tmp_path / 'mmcast' / '.mim')
    setup_py.add_mim_extension(mim_dir, mode='symlink')
    setup_py.add_mim_extension(mim_dir, mode='symlink')  # reinstall
    for name in setup_py.MIM_FILES:
        link = osp.join(mim_dir, name)
        assert osp.islink(link) and not osp.isabs(os.readlink(link))
        assert osp.samefile(link, tmp_path / name)


def test_mim_search_lists_every_config(site, tmp_path):
    out = _mim(['search', 'mmcast'], site, str(tmp_path))
    names = [m.name for m in _metafile_models()]
    missing = [n for n in names if n.lower() not in out]
    assert not missing, missing
    assert 'toy street scenes (10 % labels)/mask_ap' in out  # with results


def test_mim_download_writes_the_config(site, tmp_path):
    dest = tmp_path / 'dest'
    name = config_names()['supervised_student_toy']
    _mim(['download', 'mmcast', '--config', name, '--dest', str(dest)], site,
         str(tmp_path))
    assert sorted(os.listdir(dest)) == [f'{name}.py']
    text = (dest / f'{name}.py').read_text()
    assert '_base_' not in text  # the bases merged in: one file to edit
    assert "type='CASTMask2Former'" in text and 'max_iters=1800' in text
    assert re.search(r"imports=\[\s*'mmcast',?\s*\]", text)


def test_mim_train_and_test_mmcast_find_config_by_name(site, toy_data_root,
                                                       tmp_path):
    work_dir = str(tmp_path / 'work')
    opts = toy_cfg_options(toy_data_root, work_dir) + [
        f'train_dataloader.dataset.ann_file={SPLIT}',
        'train_cfg.max_iters=1', 'train_cfg.val_interval=100',
        'param_scheduler.end=1', 'default_hooks.checkpoint.interval=1'
    ]
    # cwd without configs/: mim finds the file in mmcast/.mim/configs
    log = _mim(['train', 'mmcast', 'supervised_student_toy.py', '--work-dir',
                work_dir, '--cfg-options'] + opts, site, str(tmp_path))
    assert osp.join(site, 'mmcast', '.mim', 'tools', 'train.py') in log
    assert osp.isfile(osp.join(work_dir, 'iter_1.pth'))
    log = _mim(['test', 'mmcast', 'supervised_student_toy.py', '--checkpoint',
                osp.join(work_dir, 'iter_1.pth'), '--work-dir', work_dir,
                '--cfg-options'] + opts, site, str(tmp_path))
    assert osp.join(site, 'mmcast', '.mim', 'tools', 'test.py') in log
    assert 'Iter(test)' in log and 'coco/segm_mAP' in log
