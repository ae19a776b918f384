# Copyright (c) mmcast contributors. All rights reserved.
"""Configs loaded with an environment of their own (``load_config``) and
the pipeline's cached loader (``ConfigLoader``).

``{{$VAR:default}}`` placeholders of a config and its ``_base_`` files are
filled from the given environment as MMEngine's own ``Config.fromfile``
fills them from ``os.environ`` (the stages load with it: both read the
same values, a backslash included), ``os.environ`` and the working
directory untouched; ``{{ fileDirname }}``
is the original file's folder and the config names the original file. The
loader parses a file once and hands out copies on request.
"""
import os
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT
from mmcast.apis.pipeline import ConfigLoader, RunSpec, parse_args
from mmcast.utils.config_files import load_config

BASE = '''\
root = '{{$MMCAST_TEST_ROOT:default/root/}}'
base_dir = '{{ fileDirname }}'
'''
CHILD = '''\
_base_ = ['./_base_/base.py']
name = r'{{$MMCAST_TEST_NAME:anon}}'
literal = {{'$MMCAST_TEST_LITERAL:None'}}
here = '{{ fileDirname }}'
'''


@pytest.fixture
def config_files(tmp_path):
    """``tmp_path/child.py`` inheriting ``tmp_path/_base_/base.py``."""
    (tmp_path / '_base_').mkdir()
    (tmp_path / '_base_' / 'base.py').write_text(BASE)
    (tmp_path / 'child.py').write_text(CHILD)
    return tmp_path


@pytest.fixture
def clean_environ(monkeypatch):
    """No ``MMCAST_TEST_*`` variable in ``os.environ``."""
    for name in ('MMCAST_TEST_ROOT', 'MMCAST_TEST_NAME',
                 'MMCAST_TEST_LITERAL', 'MMCAST_TEST_MISSING'):
        monkeypatch.delenv(name, raising=False)


def test_placeholders_read_the_given_environment(config_files, clean_environ):
    before = dict(os.environ)
    env = {'MMCAST_TEST_ROOT': '/data/run a/', 'MMCAST_TEST_NAME': 'x',
           'MMCAST_TEST_LITERAL': "('p', 'q')"}
    cfg = load_config(str(config_files / 'child.py'), env)
    assert (cfg.root, cfg.name, cfg.literal) == ('/data/run a/', 'x',
                                                 ('p', 'q'))
    assert dict(os.environ) == before
    defaults = load_config(str(config_files / 'child.py'), {})
    assert (defaults.root, defaults.name, defaults.literal) == \
        ('default/root/', 'anon', None)


def test_os_environ_is_not_read(config_files, monkeypatch):
    monkeypatch.setenv('MMCAST_TEST_ROOT', '/from/os/environ/')
    cfg = load_config(str(config_files / 'child.py'), {})
    assert cfg.root == 'default/root/'


def test_values_read_as_the_stages_read_them(config_files, monkeypatch):
    """A value with a backslash reads as MMEngine reads it from
    ``os.environ`` in the stages (a replacement template, where ``\\b`` is
    a backspace): the pipeline checks what the stages will train with."""
    value = 'a\\b'
    literal = repr((value, 'c'))  # a Python literal, as --classes gives it
    env = {'MMCAST_TEST_NAME': value, 'MMCAST_TEST_LITERAL': literal,
           'MMCAST_TEST_ROOT': '/r/'}
    ours = load_config(str(config_files / 'child.py'), env)
    for name, text in env.items():
        monkeypatch.setenv(name, text)
    theirs = Config.fromfile(str(config_files / 'child.py'))
    assert ours.to_dict() == theirs.to_dict()
    assert theirs.name == 'a\x08'  # what makes a parity test worth having


def test_a_missing_variable_without_default_is_named(tmp_path,
                                                     clean_environ):
    (tmp_path / 'c.py').write_text("x = '{{$MMCAST_TEST_MISSING:}}'\n")
    with pytest.raises(KeyError, match='MMCAST_TEST_MISSING'):
        load_config(str(tmp_path / 'c.py'), {'OTHER': '1'})
    cfg = load_config(str(tmp_path / 'c.py'), {'MMCAST_TEST_MISSING': 'y'})
    assert cfg.x == 'y'


def test_file_names_are_the_original_ones(config_files, tmp_path_factory,
                                          monkeypatch):
    """``{{ fileDirname }}`` of each file is its own folder, the config
    names the original file, and a relative path is read in ``root``, not
    in the working directory."""
    monkeypatch.chdir(tmp_path_factory.mktemp('elsewhere'))
    cfg = load_config('child.py', {}, root=str(config_files))
    assert cfg.here == str(config_files)
    assert cfg.base_dir == str(config_files / '_base_')
    assert cfg.filename == str(config_files / 'child.py')


def test_a_real_stage_config_with_your_classes(tmp_path, monkeypatch):
    """custom-cpu's stage 2 with your classes (the stages' environment as
    ``RunSpec`` makes it), loaded from another folder, equals the config
    the stages load with MMEngine in that environment."""
    monkeypatch.chdir(tmp_path)
    spec = RunSpec.from_args(parse_args([
        'custom-cpu', '--work-dir', str(tmp_path / 'run'), '--classes',
        'car', '人']))
    path = 'configs/mmcast/custom/distill_custom-cpu.py'
    cfg = load_config(path, spec.env, root=REPO_ROOT)
    assert cfg.classes == ('car', '人')
    assert cfg.metainfo.classes == ('car', '人')
    assert cfg.num_classes == 2
    assert cfg.filename == osp.join(REPO_ROOT, path)
    loaded = ConfigLoader(spec).read(path)
    assert loaded.to_dict() == cfg.to_dict()
    for name in ('MMCAST_CUSTOM_CLASSES', 'MMCAST_CUSTOM_ROOT',
                 'MMCAST_TOY_ROOT'):
        if name in spec.env:
            monkeypatch.setenv(name, spec.env[name])
        else:
            monkeypatch.delenv(name, raising=False)
    theirs = Config.fromfile(osp.join(REPO_ROOT, path))
    assert theirs.to_dict() == cfg.to_dict()
    assert os.getcwd() == str(tmp_path)


def test_loader_parses_once_and_copies_on_request(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = RunSpec.from_args(parse_args(
        ['toy', '--work-dir', str(tmp_path / 'run'), '--data-root',
         str(tmp_path / 'data')]))
    loader = ConfigLoader(spec)
    path = loader.stage_config('distill')
    cfg = loader.read(path)
    assert loader.read(path) is cfg
    assert loader.read(osp.join(REPO_ROOT, path)) is cfg  # the same file
    assert cfg.data_root == str(tmp_path / 'data' / 'toy') + '/'
    copy = loader.config_file(path)
    assert copy is not cfg and copy.to_dict() == cfg.to_dict()
    copy.train_cfg.max_iters = 3
    copy.custom_hooks[0].out_file = 'elsewhere.json'
    assert loader.read(path).train_cfg.max_iters == \
        loader.config_iters(path) != 3
    assert loader.read(path).custom_hooks[0].out_file != 'elsewhere.json'
    # another loader (another run) parses the file again
    assert ConfigLoader(spec).read(path) is not cfg
