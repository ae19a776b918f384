# Copyright (c) mmcast contributors. All rights reserved.
"""The shape of the ``mmcast`` package, read from its code with ``ast``.

* no import cycle between its modules (an import inside a function counts
  too);
* ``pseudo_labels`` imports nothing of ``models`` (the teacher comes in
  from the caller), so the two never import each other both ways;
* the product never names ``mmcast.testing``, not even as an import
  string;
* no module imports a private (``_name``) of another module;
* every file holds at most :data:`MAX_LINES` lines;
* nothing under ``mmcast/`` raises ``SystemExit``: the library raises its
  own errors, the command lines (``tools/``) turn them into exit statuses;
  the pipeline's API called with bad options raises ``PipelineError``;
* ``mmcast/apis/`` holds the pipeline and its own helpers only, and
  nothing there changes the process' environment, working directory or
  umask (threads plan and load configs at once);
* ``--cfg-options`` strings are made and parsed in one module, the
  launcher's; a planned stage is frozen.
"""
import ast
import dataclasses
import os
import os.path as osp
from typing import Dict, List, Set

import pytest

from conftest import REPO_ROOT

PACKAGE = osp.join(REPO_ROOT, 'mmcast')
MAX_LINES = 450


def _modules() -> Dict[str, str]:
    """``{dotted module name: path}`` of every ``.py`` of the package."""
    found = {}
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = osp.join(root, name)
            rel = osp.relpath(path, REPO_ROOT)[:-3].split(os.sep)
            if rel[-1] == '__init__':
                rel = rel[:-1]
            found['.'.join(rel)] = path
    return found


MODULES = _modules()


def _trees() -> Dict[str, ast.AST]:
    trees = {}
    for name, path in MODULES.items():
        with open(path, encoding='utf-8') as f:
            trees[name] = ast.parse(f.read(), path)
    return trees


TREES = _trees()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names."""
    if not node.level:
        return node.module or ''
    package = module if MODULES[module].endswith('__init__.py') else \
        module.rsplit('.', 1)[0]
    parts = package.split('.')
    base = parts[:len(parts) - node.level + 1]
    return '.'.join(base + ([node.module] if node.module else []))


def _imports(module: str) -> Set[str]:
    """The package modules ``module`` imports (a name imported from a
    package that is a module of it counts as that module)."""
    found = set()
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            names = [f'{base}.{alias.name}' for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition('.')[0]
            if name and name != module:
                found.add(name)
    return found


def _cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """A cycle of ``graph`` (its modules in order), or ``[]``."""
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def _package_edges() -> Dict[str, Set[str]]:
    """Module → imported modules, without the edges into a package's own
    ``__init__`` from inside it (the package face re-exports them)."""
    graph = {}
    for module in MODULES:
        graph[module] = {
            m for m in _imports(module)
            if not (MODULES[m].endswith('__init__.py') and
                    module.startswith(m + '.'))}
    return graph


def test_no_import_cycle():
    assert _cycle(_package_edges()) == []


def test_the_cycle_finder_finds_one():
    assert _cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == \
        ['a', 'b', 'c', 'a']
    assert _cycle({'a': {'b'}, 'b': set()}) == []


def test_pseudo_labels_import_nothing_of_models():
    for module in MODULES:
        if module.startswith('mmcast.pseudo_labels'):
            models = [m for m in _imports(module)
                      if m.startswith('mmcast.models')]
            assert models == [], module


def test_the_product_never_names_mmcast_testing():
    for module, path in MODULES.items():
        if module.startswith('mmcast.testing'):
            continue
        with open(path, encoding='utf-8') as f:
            assert 'mmcast.testing' not in f.read(), path


def test_no_private_name_crosses_modules():
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and \
                    _resolve(module, node).startswith('mmcast'):
                private = [a.name for a in node.names
                           if a.name.startswith('_')
                           and not a.name.startswith('__')]
                assert private == [], (module, private)


def test_every_file_is_readable_in_one_sitting():
    for module, path in MODULES.items():
        with open(path, encoding='utf-8') as f:
            lines = sum(1 for _ in f)
        assert lines <= MAX_LINES, (path, lines)


def test_the_library_raises_no_system_exit():
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) \
                    else node.exc
                assert getattr(exc, 'id', None) != 'SystemExit', module


@pytest.mark.parametrize('options', [
    ('--teacher', 'nope'), ('--no-such-flag', ), ('--seeds', 'x'),
    ('--iters', 'distill=x'), ('--stage-cfg-options', 'distill:noequals')])
def test_the_pipeline_api_raises_pipeline_errors(tmp_path, options):
    from mmcast.apis.pipeline import PipelineError, run_pipeline
    try:
        run_pipeline('toy', str(tmp_path / 'w'), *options)
    except PipelineError as error:
        assert str(error).strip(), options
    except SystemExit as stop:  # pragma: no cover - what this test catches
        pytest.fail(f'{options}: SystemExit({stop.code}) escaped the API')
    else:
        pytest.fail(f'{options} was accepted')
    assert not (tmp_path / 'w').exists()  # refused before writing


def _calls(tree: ast.AST) -> List[str]:
    """``a.b.c(...)`` calls of a module as ``'a.b.c'`` (with the first
    argument appended as ``'(0)'`` where it is the literal 0)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            parts, func = [], node.func
            while isinstance(func, ast.Attribute):
                parts.insert(0, func.attr)
                func = func.value
            if isinstance(func, ast.Name):
                parts.insert(0, func.id)
            zero = node.args and isinstance(node.args[0], ast.Constant) \
                and node.args[0].value == 0
            names.append('.'.join(parts) + ('(0)' if zero else ''))
    return names


def test_the_pipeline_leaves_process_state_alone():
    forbidden = {'os.environ.clear', 'os.environ.update', 'os.chdir',
                 'os.umask(0)', 'os.putenv'}
    for module, tree in TREES.items():
        if module.startswith('mmcast.apis'):
            found = forbidden & set(_calls(tree))
            assert not found, (module, found)
        for node in ast.walk(tree):  # os.environ[...] = ... anywhere
            if isinstance(node, (ast.Assign, ast.Delete)):
                targets = node.targets
                for target in targets:
                    assert not (isinstance(target, ast.Subscript) and
                                ast.unparse(target.value) == 'os.environ'),\
                        module


def test_cfg_option_strings_live_in_the_launcher():
    for module, tree in TREES.items():
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
            {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
             for a in n.names}
        if module != 'mmcast.apis.pipeline.launchers':
            assert 'DictAction' not in names, module
    from mmcast.apis.pipeline import Stage
    stage = Stage('distill', 'stage 2', 'c.py', '/w')
    with pytest.raises(dataclasses.FrozenInstanceError):
        stage.max_iters = 3


def test_apis_holds_the_pipeline_only():
    top = sorted(name for name in os.listdir(osp.join(PACKAGE, 'apis'))
                 if not name.startswith(('.', '__pycache__')))
    assert top == ['__init__.py', 'pipeline'], top
