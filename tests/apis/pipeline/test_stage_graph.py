# Copyright (c) mmcast contributors. All rights reserved.
"""The stage graph (``configs/mmcast/stage_graph.json``): what each stage
is made from.

Every hand-off comes from θ_T^0 or from a stage the stage lists as
upstream (stage 2's other teachers of ``--distill-teacher`` from a stage
above it), every stage of the table of stage configs is in the graph, the
graph has an order to run it in, a hand-off of several sources is a list,
and a table naming a stage it does not have is refused, naming the file.
"""
import json
import os.path as osp

import pytest

from conftest import REPO_ROOT
from mmcast.apis.pipeline import PipelineError, stage_rows
from mmcast.apis.pipeline.planning import DISTILL_TEACHER_SOURCES
from mmcast.apis.pipeline.stage_graph import (GRAPH, TEACHER0, stage_graph,
                                              stage_keys)


def table(root: str = REPO_ROOT) -> dict:
    """The graph's json, read here."""
    with open(osp.join(root, GRAPH), encoding='utf-8') as f:
        return json.load(f)


def above(graph: dict, key: str) -> set:
    """Every stage ``key`` is made from, directly or not."""
    found, todo = set(), list(graph[key].upstream)
    while todo:
        u = todo.pop()
        if u not in found:
            found.add(u)
            todo.extend(graph[u].upstream)
    return found


def test_the_graph_is_its_table():
    raw = table()
    graph = stage_graph()
    assert list(graph) == list(raw) == list(stage_keys())
    for key, entry in raw.items():
        node = graph[key]
        assert node.key == key
        assert node.upstream == tuple(entry['upstream'])
        assert dict(node.handoffs) == entry['handoffs']
        assert node.pseudo_labels == entry.get('pseudo_labels')


def test_every_handoff_comes_from_teacher0_or_an_upstream_stage():
    graph = stage_graph()
    handoffs = 0
    for node in graph.values():
        for config_key, source in node.handoffs:
            handoffs += 1
            assert source == TEACHER0 or source in node.upstream, \
                (node.key, config_key, source)
    assert handoffs >= 6


def test_stage_2s_other_teachers_are_above_it():
    graph = stage_graph()
    upstream = above(graph, 'distill')
    for sources in DISTILL_TEACHER_SOURCES.values():
        sources = (sources, ) if isinstance(sources, str) else sources
        # θ_T^0 (--distill-teacher pretrained) is above every stage 1a
        assert set(sources) - {TEACHER0} <= upstream, sources


def test_every_stage_of_the_config_table_is_in_the_graph():
    stages = {row['stage'] for row in stage_rows()}
    assert stages and stages <= set(stage_graph())


def test_the_graph_has_an_order():
    """Kahn's algorithm takes every stage: no cycle."""
    graph = stage_graph()
    waiting = {k: set(n.upstream) for k, n in graph.items()}
    order = []
    while True:
        ready = sorted(k for k, up in waiting.items() if not up)
        if not ready:
            break
        for key in ready:
            order.append(key)
            del waiting[key]
        for up in waiting.values():
            up.difference_update(ready)
    assert not waiting, f'a cycle among {sorted(waiting)}'
    assert order.index('adapt_teacher') < order.index('distill') < \
        order.index('finetune')


def test_handoff_overrides():
    distill = stage_graph()['distill']
    finals = {'adapt_teacher': '/w/1a/iter_3.pth',
              'adapt_teacher_selftrain': '/w/1b/iter_5.pth'}
    assert distill.handoff_overrides(finals).items == (
        ('model.teacher_checkpoint', '/w/1b/iter_5.pth'), )
    ensemble = distill.handoff_overrides(finals, {
        'model.teacher_checkpoint': ('adapt_teacher',
                                     'adapt_teacher_selftrain')})
    value = ensemble.get('model.teacher_checkpoint')
    assert type(value) is list
    assert value == ['/w/1a/iter_3.pth', '/w/1b/iter_5.pth']
    selftrain = stage_graph()['adapt_teacher_selftrain']
    assert selftrain.handoff_overrides(
        dict(finals, **{TEACHER0: '/w/t0.pth'})).as_dict() == {
            'model.student.init_cfg.checkpoint': '/w/t0.pth',
            'model.teacher_checkpoint': '/w/1a/iter_3.pth'}


def test_the_graph_is_a_copy():
    stage_graph().pop('distill')
    assert 'distill' in stage_graph()


def write_table(root, entries: dict) -> str:
    path = root / GRAPH
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(entries))
    return str(path)


@pytest.mark.parametrize('entries,unknown', [
    ({'a': {'upstream': ['ghost'], 'handoffs': {}}}, 'ghost'),
    ({'a': {'upstream': [], 'handoffs': {}},
      'b': {'upstream': ['a'], 'handoffs': {'load_from': 'phantom'}}},
     'phantom'),
])
def test_a_table_naming_an_unknown_stage_is_refused(tmp_path, entries,
                                                    unknown):
    path = write_table(tmp_path, entries)
    with pytest.raises(PipelineError) as error:
        stage_graph(str(tmp_path))
    assert path in str(error.value) and unknown in str(error.value)


def test_another_roots_table(tmp_path):
    write_table(tmp_path, {
        'b': {'upstream': [], 'handoffs': {}},
        'a': {'upstream': ['b'], 'handoffs': {'load_from': TEACHER0},
              'pseudo_labels': 'x'}})
    assert stage_keys(str(tmp_path)) == ('b', 'a')
    assert stage_graph(str(tmp_path))['a'].pseudo_labels == 'x'
    assert 'distill' in stage_graph()  # the repository's, unchanged
