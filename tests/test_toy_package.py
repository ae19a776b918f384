# Copyright (c) mmcast contributors. All rights reserved.
"""The toy package (``mmcast/toy``): its imports run one way, the product
does not import the test helpers, and every world writes the data it wrote
when the digests below were recorded."""
import ast
import glob
import hashlib
import os
import os.path as osp
from typing import Dict, List, Optional, Set

import cv2
import pytest

from conftest import REPO_ROOT
from mmcast.toy.worlds import WORLDS, make_toy_dataset

TOY = osp.join(REPO_ROOT, 'mmcast', 'toy')
# the code that runs a user's work: the package (less its test helpers) and
# the pipeline's command line
PRODUCT = [
    path for path in glob.glob(
        osp.join(REPO_ROOT, 'mmcast', '**', '*.py'), recursive=True)
    if not osp.relpath(path, REPO_ROOT).startswith('mmcast/testing/')
] + [osp.join(REPO_ROOT, 'tools', 'cast_pipeline.py')]
MAX_LINES = 450


def module_name(path: str, root: str) -> str:
    """``a.b.c`` of ``<root>/a/b/c.py`` (``a.b`` of ``a/b/__init__.py``)."""
    parts = osp.splitext(osp.relpath(path, root))[0].split(os.sep)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported_modules(path: str, module: str) -> Set[str]:
    """The modules a file imports anywhere in it (also inside functions),
    relative imports resolved against ``module``; for ``from m import n``
    both ``m`` and ``m.n`` (``n`` may be a module)."""
    package = module if path.endswith('__init__.py') else module.rpartition(
        '.')[0]
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split('.')
            if node.level:
                base = base[:len(base) - node.level + 1]
                source = '.'.join(base + ([node.module] if node.module else
                                          []))
            else:
                source = node.module
            found.add(source)
            found.update(f'{source}.{alias.name}' for alias in node.names)
    return found


def import_graph(folder: str, root: str) -> Dict[str, Set[str]]:
    """Module -> the modules of ``folder`` it imports."""
    paths = glob.glob(osp.join(folder, '**', '*.py'), recursive=True)
    modules = {module_name(p, root): p for p in paths}
    return {
        name: imported_modules(path, name) & set(modules) - {name}
        for name, path in modules.items()
    }


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """A cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: Dict[str, str] = {}  # 'open' on the path, 'done' after it

    def visit(node: str, path: List[str]) -> Optional[List[str]]:
        state[node] = 'open'
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 'open':
                return path[path.index(nxt):] + [node, nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [node])
                if cycle:
                    return cycle
        state[node] = 'done'
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def test_the_check_finds_a_cycle_through_a_lazy_import(tmp_path):
    pkg = tmp_path / 'pkg'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    (pkg / 'a.py').write_text('from .b import B\nA = 1\n')
    (pkg / 'b.py').write_text('B = 2\n\n\ndef f():\n    from . import a\n')
    (pkg / 'c.py').write_text('from pkg.a import A\n')
    graph = import_graph(str(pkg), str(tmp_path))
    assert graph['pkg.c'] == {'pkg.a'}
    assert find_cycle(graph) == ['pkg.a', 'pkg.b', 'pkg.a']
    (pkg / 'b.py').write_text('B = 2\n')
    assert find_cycle(import_graph(str(pkg), str(tmp_path))) is None


def test_the_toy_package_imports_one_way():
    graph = import_graph(TOY, REPO_ROOT)
    assert {'mmcast.toy.worlds', 'mmcast.toy.scene',
            'mmcast.toy.tiny_teachers'} <= set(graph)
    assert find_cycle(graph) is None
    # the shared parts import no world
    for module in ('mmcast.toy.scene', 'mmcast.toy.drawing',
                   'mmcast.toy.cityscapes_layout'):
        assert graph[module] <= {'mmcast.toy.scene'}, module


def test_toy_files_are_short():
    for path in glob.glob(osp.join(TOY, '*.py')):
        with open(path, encoding='utf-8') as f:
            assert len(f.readlines()) <= MAX_LINES, path


def test_the_product_does_not_import_the_test_helpers():
    assert len(PRODUCT) > 100
    named = []
    for path in PRODUCT:
        with open(path, encoding='utf-8') as f:
            text = f.read()
        module = module_name(path, REPO_ROOT)
        if 'mmcast.testing' in text or any(
                m == 'mmcast.testing' or m.startswith('mmcast.testing.')
                for m in imported_modules(path, module)):
            named.append(osp.relpath(path, REPO_ROOT))
    assert not named, named


# SHA-256 of each world's tiny dataset (see _digest), recorded from the
# generator as it was before it moved into this package: a change of one
# pixel or annotation of any world shows here.
DIGESTS = {
    ('streets', 'target'):
    '523b6b5172ebf5fa87836684917467bba8c633f1867e34a4dba580c727a0a236',
    ('streets', 'source'):
    'cf9e9e1a3cbef63a5add8473bc6d97147cb977e5983572aca93c6125525bb629',
    ('tabletop', 'target'):
    '617603f9e66a7bd61484e2739f0549d25036bef41aaf9965f8fba1a35e6ea0b3',
    ('tabletop', 'source'):
    '65966f116d3af7d4be9325fffd45ccf1402b3fc097f743d5089e41ba4a642d72',
    ('cells', 'target'):
    '420d2b4520cd513b3c2397004e7eb885865974c8cf506551d956589c03ea0df7',
    ('cells', 'source'):
    '91fbee159fe06b9c4ad6ce37da51867747870989060effb273d4169e18668937',
}


def _digest(root: str) -> str:
    """SHA-256 over every file of a dataset in path order: a PNG by its
    decoded pixels (so that another zlib still gives the same digest), any
    other file by its bytes."""
    sha = hashlib.sha256()
    paths = sorted(
        osp.relpath(osp.join(d, f), root) for d, _, files in os.walk(root)
        for f in files)
    for rel in paths:
        sha.update(rel.encode())
        if rel.endswith('.png'):
            pixels = cv2.imread(osp.join(root, rel), cv2.IMREAD_UNCHANGED)
            sha.update(f'{pixels.dtype}{pixels.shape}'.encode())
            sha.update(pixels.tobytes())
        else:
            with open(osp.join(root, rel), 'rb') as f:
                sha.update(f.read())
    return sha.hexdigest()


@pytest.mark.parametrize('world, style', list(DIGESTS))
def test_every_world_writes_the_data_it_wrote_before(world, style, tmp_path):
    assert world in WORLDS
    make_toy_dataset(str(tmp_path), num_train=3, num_val=2, num_test=1,
                     height=64, width=96, seed=5, style=style,
                     max_instances=40 if world == 'cells' else None,
                     show_progress=False, world=world)
    assert _digest(str(tmp_path)) == DIGESTS[(world, style)]
