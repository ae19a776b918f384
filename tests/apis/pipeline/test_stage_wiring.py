# Copyright (c) mmcast contributors. All rights reserved.
"""Which stage feeds which is said once, by the stage graph
(``configs/mmcast/stage_graph.json``).

* Every shipped stage config (a row of the table of stage configs) whose
  default upstream checkpoint is a work dir (``work-dir://``) names the
  default work dir of a row of a stage above its own in the graph, of its
  dataset, teacher and student; at a hand-off key of the graph, that of the
  hand-off's source (θ_T^0's: a stage made from none, or a checkpoint the
  table writes nowhere: ``--pretrained-teacher``, a stand-in by hand).
* No module of ``mmcast/`` or ``tools/`` but the graph's and the table's
  maps anything to a stage with a literal (``{'distill':
  'adapt_teacher_selftrain'}``, ``dict(finetune='distill')``, a list of
  stage pairs): upstreams, hand-off sources, ``--distill-teacher``'s
  teachers and ``--iters``' aliases are read from the graph. The generated
  docs are rendered from it (``tools/docs/update_tables.py``).
"""
import ast
import glob
import os.path as osp
from functools import lru_cache
from typing import Dict, List, Optional, Set

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT
from mmcast.apis.pipeline.stage_graph import (TEACHER0, shared_stages,
                                              stage_graph, upstream_of)
from mmcast.apis.pipeline.stage_table import CONFIG_DIR, stage_rows
from mmcast.utils.work_dir_checkpoint import WORK_DIR_SCHEME

# the modules that hold the wiring: the graph's and the table's
WIRING_MODULES = ('mmcast/apis/pipeline/stage_graph.py',
                  'mmcast/apis/pipeline/stage_table.py')
# stage pairs that are no wiring: (module, name assigned) -> what they are
NOT_WIRING = {
    ('mmcast/evaluation/results_table.py', 'CLAIMS'):
    'the differences the results table claims, row against row',
}


# ------------------------------------------------- configs' default inputs
def default_work_dir(row: Dict[str, Optional[str]]) -> str:
    """The work dir a row's config trains in by default (named after the
    config, also for its short name: :func:`alias_text`)."""
    return 'work_dirs/' + osp.basename(row['config'])


@lru_cache(maxsize=None)
def names_work_dir(path: str) -> bool:
    """Whether the config file ``path`` or a config it inherits from (in
    the repository) holds a ``work-dir://`` string."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(
                node.value, str) and node.value.startswith(WORK_DIR_SCHEME):
            return True
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, 'id', None) == '_base_' for t in node.targets):
            bases = ast.literal_eval(node.value)
            for base in [bases] if isinstance(bases, str) else bases:
                if '::' not in base and names_work_dir(
                        osp.normpath(osp.join(osp.dirname(path), base))):
                    return True
    return False


def config_path(row: Dict[str, Optional[str]]) -> str:
    return osp.join(REPO_ROOT, CONFIG_DIR, f'{row["config"]}.py')


WIRED_ROWS = [row for row in stage_rows()
              if names_work_dir(config_path(row))]


def work_dir_defaults(node, where: str = '') -> Dict[str, Set[str]]:
    """``{work dir: {key path}}`` of every ``work-dir://`` string of a
    config's content."""
    found: Dict[str, Set[str]] = {}
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, (list, tuple)) else ()
    for key, value in items:
        path = f'{where}.{key}' if where else str(key)
        if isinstance(value, str) and value.startswith(WORK_DIR_SCHEME):
            found.setdefault(value[len(WORK_DIR_SCHEME):], set()).add(path)
        for work_dir, paths in work_dir_defaults(value, path).items():
            found.setdefault(work_dir, set()).update(paths)
    return found


def wiring_errors(row: Dict[str, Optional[str]], content: dict) -> List[str]:
    """What the ``work-dir://`` defaults of a row's config ``content`` say
    against the stage graph and the table."""
    rows = {default_work_dir(r): r for r in stage_rows()}
    node = stage_graph()[row['stage']]
    handoffs = dict(node.handoffs)
    above = upstream_of(row['stage'], transitive=True)
    errors = []
    for work_dir, paths in sorted(work_dir_defaults(content).items()):
        named = rows.get(work_dir)
        at = f'{row["config"]} ({row["stage"]}): {sorted(paths)}'
        if named is None:
            if not any(handoffs.get(p) == TEACHER0 for p in paths):
                errors.append(f'{at} name {work_dir}, no row\'s work dir')
            continue
        if named['stage'] not in above:
            errors.append(f'{at} name {work_dir} of {named["stage"]}, '
                          f'which does not feed {row["stage"]}')
        for key in ('dataset', 'teacher', 'variant'):
            if None not in (named[key], row[key]) and \
                    named[key] != row[key]:
                errors.append(f'{at} name {work_dir}, of another {key}')
        for path in sorted(paths & set(handoffs)):
            source = handoffs[path]
            if source == TEACHER0 and named['stage'] not in shared_stages() \
                    or source != TEACHER0 and named['stage'] != source:
                errors.append(f'{at}: {path} is handed {source} in the '
                              f'stage graph, not {named["stage"]}')
    return errors


def test_the_rows_work_dirs_are_theirs_alone():
    dirs = [default_work_dir(row) for row in stage_rows()]
    assert len(dirs) == len(set(dirs))
    assert len({row['config'] for row in WIRED_ROWS}) >= 40


@pytest.mark.parametrize('row', WIRED_ROWS, ids=lambda r: r['config'])
def test_a_configs_default_inputs_are_its_upstream_stages(row):
    content = Config.fromfile(config_path(row)).to_dict()
    assert work_dir_defaults(content), row['config']
    assert wiring_errors(row, content) == []


def test_a_config_naming_a_stage_that_does_not_feed_it_fails():
    rows = {(r['dataset'], r['stage'], r['variant']): r
            for r in stage_rows() if r['teacher'] in (None, 'mask2former')}
    finetune = rows[('cityscapes', 'finetune', None)]
    content = Config.fromfile(config_path(finetune)).to_dict()
    assert wiring_errors(finetune, content) == []

    def naming(work_dir: str) -> dict:
        changed = dict(content, model=dict(content['model']))
        changed['model']['init_cfg'] = dict(
            content['model']['init_cfg'],
            checkpoint=WORK_DIR_SCHEME + work_dir)
        return changed

    baseline = default_work_dir(rows[('cityscapes', 'supervised_student',
                                      None)])
    assert 'does not feed finetune' in ' '.join(
        wiring_errors(finetune, naming(baseline)))
    # a stage above it, but not the one the graph hands that key
    teacher = default_work_dir(rows[('cityscapes', 'adapt_teacher_selftrain',
                                     None)])
    assert 'is handed distill' in ' '.join(
        wiring_errors(finetune, naming(teacher)))
    other = default_work_dir(rows[('coco', 'distill', None)])
    assert 'of another dataset' in ' '.join(
        wiring_errors(finetune, naming(other)))
    assert 'no row\'s work dir' in ' '.join(
        wiring_errors(finetune, naming('work_dirs/elsewhere')))


# ------------------------------------------------ the wiring in the code
def _stage_literal(node: ast.AST) -> bool:
    """Whether ``node`` is a literal stage key (or θ_T^0), or a tuple or
    list of them."""
    names = set(stage_graph()) | {TEACHER0}
    if isinstance(node, (ast.Tuple, ast.List)):
        return bool(node.elts) and all(_stage_literal(e) for e in node.elts)
    return isinstance(node, ast.Constant) and node.value in names


def _const(node: Optional[ast.AST]):
    return node.value if isinstance(node, ast.Constant) else None


def stage_mappings(text: str) -> List[tuple]:
    """``(line, name assigned)`` of every literal of ``text`` that maps
    something to a stage: a dict entry or ``dict()`` keyword whose value
    is a stage key (other than its key), or a list of stage pairs."""
    tree = ast.parse(text)
    parents = {child: parent for parent in ast.walk(tree)
               for child in ast.iter_child_nodes(parent)}

    def assigned(node: ast.AST) -> Optional[str]:
        while node in parents:
            node = parents[node]
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                target = node.targets[0] if isinstance(
                    node, ast.Assign) else node.target
                return ast.unparse(target)
        return None

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            entries = list(zip(node.keys, node.values))
        elif isinstance(node, ast.Call) and getattr(node.func, 'id',
                                                    None) == 'dict':
            entries = [(ast.Constant(kw.arg), kw.value)
                       for kw in node.keywords]
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            # (stage, stage) pairs
            entries = [tuple(e.elts) for e in node.elts
                       if isinstance(e, ast.Tuple) and len(e.elts) == 2
                       and _stage_literal(e.elts[0])]
        else:
            continue
        found += [(value.lineno, assigned(node)) for key, value in entries
                  if _stage_literal(value) and _const(key) != _const(value)]
    return found


PLANTED = '''
SOURCES = {'distill': 'adapt_teacher_selftrain'}
CHOICES = {'adapted': ('adapt_teacher', 'adapt_teacher_selftrain')}
nested = dict(finetune={'model.init_cfg.checkpoint': 'distill'})
PAIRS = [('finetune', 'distill'), ('distill', 'adapt_teacher_selftrain')]
ALIASES = dict(pretrained='teacher0')
# no wiring: a folder named like its stage, an order, labels
FOLDERS = dict(toy_foundation='toy_foundation')
ORDER = ('distill', 'finetune')
LABELS = {'distill': 'stage 2', 'finetune': '3'}
'''


def test_a_hand_written_mapping_to_a_stage_is_found():
    assert sorted(stage_mappings(PLANTED)) == [
        (2, 'SOURCES'), (3, 'CHOICES'), (4, 'nested'), (5, 'PAIRS'),
        (5, 'PAIRS'), (6, 'ALIASES')]


def test_the_graph_alone_says_which_stage_feeds_which():
    found = {}
    for path in sorted(
            glob.glob(osp.join(REPO_ROOT, 'mmcast', '**', '*.py'),
                      recursive=True) +
            glob.glob(osp.join(REPO_ROOT, 'tools', '**', '*.py'),
                      recursive=True)):
        rel = osp.relpath(path, REPO_ROOT)
        if rel in WIRING_MODULES:
            continue
        with open(path, encoding='utf-8') as f:
            for line, name in stage_mappings(f.read()):
                if (rel, name) not in NOT_WIRING:
                    found.setdefault(f'{rel}:{line}', name)
    assert found == {}
