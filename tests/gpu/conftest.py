# Copyright (c) mmcast contributors. All rights reserved.
"""The GPU suite: run by ``make test-gpu`` (``tests/gpu/run.py``), left out
of ``pytest tests`` (``collect_ignore`` of ``tests/conftest.py``).

Without a CUDA device a run stops before its first test with the one line
of ``run.NEEDS_CUDA`` and exit status 1; ``--collect-only`` still lists the
tests.
"""
import pytest
import torch

from run import NEEDS_CUDA


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    if not session.config.option.collectonly and \
            not torch.cuda.is_available():
        pytest.exit(NEEDS_CUDA, returncode=1)
