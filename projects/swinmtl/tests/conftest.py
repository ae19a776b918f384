# Copyright (c) mmcast contributors. All rights reserved.
"""The SwinMTL tests run with the suite's fixtures of ``tests/conftest.py``.

That file is loaded by path under another module name (as
``tests/gpu/conftest.py`` does; ``conftest`` itself is mmcast's suite). Its
autouse fixtures are bound here, so that this folder's tests, which set
MMSegmentation's default scope and build runners, leave the default scope
and the visualizers as they found them for the next test of the same
pytest-xdist worker; its hooks (xdist groups, the ``slow_fixture`` modules
first) act on every collected test once ``tests`` is collected too
(``make test``: ``pytest tests projects/swinmtl/tests``).
"""
import importlib.util
import os.path as osp

PROJECT_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    '_mmcast_suite_conftest',
    osp.join(osp.dirname(osp.dirname(PROJECT_ROOT)), 'tests', 'conftest.py'))
_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_suite)

REPO_ROOT = _suite.REPO_ROOT
load_script = _suite.load_script
# the suite's autouse fixtures, for every test of this folder too
module_keeps_default_scope = _suite.module_keeps_default_scope
test_keeps_default_scope = _suite.test_keeps_default_scope
test_forgets_its_visualizers = _suite.test_forgets_its_visualizers
# the slow_fixture marker, for a run of this folder alone
pytest_configure = _suite.pytest_configure
