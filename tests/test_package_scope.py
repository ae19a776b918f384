# Copyright (c) mmcast contributors. All rights reserved.
"""mmcast runs under MMDetection's scope alone: importing it loads nothing of
MMSegmentation or of the projects (SwinMTL lives in ``projects/swinmtl``,
outside the package), no module of ``mmcast/`` imports either, and every
config of ``configs/`` is an MMDetection one."""
import ast
import glob
import json
import os.path as osp
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

# what the package must not import: MMSegmentation and the projects
FOREIGN = ('mmseg', 'projects')


def imported_names(path: str) -> list:
    """``(line, module)`` of every import of a Python file (relative
    imports resolved within ``mmcast``), and of every import string
    (``importlib.import_module('x')``, ``custom_imports``)."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    package = osp.relpath(osp.dirname(path), REPO_ROOT).split(osp.sep)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level \
                else []
            module = '.'.join(base + ([node.module] if node.module else []))
            found.append((node.lineno, module))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.split('.')[0] in FOREIGN \
                and node.value.replace('.', '').replace('_', '').isalnum():
            found.append((node.lineno, node.value))
    return found


def foreign_imports(paths) -> list:
    return [f'{osp.relpath(path, REPO_ROOT)}:{line}: {module}'
            for path in paths for line, module in imported_names(path)
            if module.split('.')[0] in FOREIGN]


@pytest.mark.parametrize('source, found', [
    ('import mmseg.models\n', ['mmseg.models']),
    ('from mmseg.registry import MODELS\n', ['mmseg.registry']),
    ('from projects.swinmtl.swinmtl import models\n',
     ['projects.swinmtl.swinmtl']),
    ("importlib.import_module('projects.swinmtl.swinmtl')\n",
     ['projects.swinmtl.swinmtl']),
    ("custom_imports = dict(imports=['mmseg'])\n", ['mmseg']),
    ('from .datasets import x\nimport mmdet\n# mmseg in a comment\n'
     "'''the mmseg scope'''\n", []),
])
def test_the_check_finds_each_kind_of_import(tmp_path, source, found):
    path = tmp_path / 'mmcast' / 'module.py'
    path.parent.mkdir()
    path.write_text(source)
    assert [m.split(': ')[-1] for m in foreign_imports([str(path)])] == found


def test_no_module_of_the_package_imports_mmseg_or_the_projects():
    files = glob.glob(osp.join(REPO_ROOT, 'mmcast', '**', '*.py'),
                      recursive=True)
    assert len(files) > 100
    assert foreign_imports(files) == []


def test_importing_mmcast_loads_no_mmseg_and_no_project():
    code = ('import json, sys, mmcast; '
            'print(json.dumps(sorted(sys.modules)))')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True).stdout
    modules = json.loads(out.strip().splitlines()[-1])
    assert 'mmcast.models' in modules and 'mmdet' in modules
    loaded = [m for m in modules
              if m.split('.')[0] in FOREIGN or 'swinmtl' in m.lower()]
    assert loaded == []


def test_every_config_of_the_package_is_an_mmdetection_one():
    """No config under ``configs/`` names MMSegmentation (its scope, its
    ``mmseg::`` bases, its imports); SwinMTL's are in ``projects/``."""
    files = glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                      recursive=True)
    assert len(files) > 100
    naming = []
    for path in files:
        with open(path, encoding='utf-8') as f:
            if 'mmseg' in f.read():
                naming.append(osp.relpath(path, REPO_ROOT))
    assert naming == []
    assert foreign_imports(files) == []
