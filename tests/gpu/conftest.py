# Copyright (c) mmcast contributors. All rights reserved.
"""The GPU suite: run by ``make test-gpu`` (``tests/gpu/run.py``), left out
of ``pytest tests`` (``collect_ignore`` of ``tests/conftest.py``).

Without a CUDA device a run stops before its first test with the one line
of ``run.NEEDS_CUDA`` and exit status 1; ``--collect-only`` still lists the
tests.
"""
import importlib.util
import os.path as osp

import pytest
import torch

from run import NEEDS_CUDA

# ``from conftest import ...`` of the CPU tests that GPU tests import
# resolves to this module here: the same names.
_parent = importlib.util.spec_from_file_location(
    '_cpu_suite_conftest',
    osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'conftest.py'))
_cpu_conftest = importlib.util.module_from_spec(_parent)
_parent.loader.exec_module(_cpu_conftest)
REPO_ROOT = _cpu_conftest.REPO_ROOT
load_script = _cpu_conftest.load_script
assert_losses_train = _cpu_conftest.assert_losses_train


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    if not session.config.option.collectonly and \
            not torch.cuda.is_available():
        pytest.exit(NEEDS_CUDA, returncode=1)
