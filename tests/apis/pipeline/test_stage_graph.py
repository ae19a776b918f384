# Copyright (c) mmcast contributors. All rights reserved.
"""The stage graph (``configs/mmcast/stage_graph.json``): what each stage
is made from.

Every hand-off comes from θ_T^0 or from a stage the stage lists as
upstream (stage 2's other teachers of ``--distill-teacher`` from a stage
above it, one for each choice of the option), every stage of the table of
stage configs is in the graph, the graph's order is one to run it in, a
hand-off of several sources is a list, and a table naming a stage it does
not have, or naming it after the stages it makes, is refused, naming the
file. The stages above a stage, those the seeds share, CAST's chain and
the stages' labels are read from it.
"""
import json
import os.path as osp

import pytest

from conftest import REPO_ROOT
from mmcast.apis.pipeline import PipelineError, stage_rows
from mmcast.apis.pipeline.settings import (DISTILL_TEACHERS, ITERS_ALIASES,
                                           ITERS_STAGES)
from mmcast.apis.pipeline.stage_graph import (GRAPH, TEACHER0, cast_chain,
                                              shared_stages, stage_graph,
                                              stage_keys, upstream_of)


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


def sources_of(source) -> tuple:
    """The stages (or θ_T^0) of a hand-off's source."""
    return (source, ) if isinstance(source, str) else source


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
        for field in ('label', 'name', 'title'):
            assert getattr(node, field) == entry.get(field, key)
        assert {k: dict(options) for k, options in node.choices} == {
            k: {c: src if isinstance(src, str) else tuple(src)
                for c, src in options.items()}
            for k, options in entry.get('choices', {}).items()}


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
    distill = graph['distill']
    upstream = above(graph, 'distill')
    (key, options), = distill.choices
    assert key in dict(distill.handoffs)
    # one source for each --distill-teacher, the default the hand-off's
    assert list(dict(options)) == list(DISTILL_TEACHERS)
    assert distill.chosen('selftrained') == dict(distill.handoffs)
    assert distill.chosen('ensemble') == {
        key: ('adapt_teacher', 'adapt_teacher_selftrain')}
    for _, sources in options:
        # θ_T^0 (--distill-teacher pretrained) is above every stage 1a
        assert set(sources_of(sources)) - {TEACHER0} <= upstream, sources
    assert all(node.chosen('adapted') == {} for node in graph.values()
               if node.key != 'distill')


def test_every_stage_of_the_config_table_is_in_the_graph():
    stages = {row['stage'] for row in stage_rows()}
    assert stages and stages <= set(stage_graph())


def test_the_graph_has_an_order():
    """Kahn's algorithm takes every stage: no cycle; the table's order is
    one to run it in."""
    graph = stage_graph()
    for at, key in enumerate(stage_keys()):
        assert set(graph[key].upstream) <= set(stage_keys()[:at]), key
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


def test_the_stages_above_a_stage():
    graph = stage_graph()
    for key in graph:
        assert set(upstream_of(key)) == set(graph[key].upstream)
        transitive = upstream_of(key, transitive=True)
        assert set(transitive) == above(graph, key)
        assert list(transitive) == [k for k in graph if k in transitive]
    assert upstream_of('finetune', transitive=True) == (
        'toy_foundation', 'teacher_standin', 'student_foundation',
        'adapt_teacher', 'adapt_teacher_selftrain', 'distill')


def test_shared_stages_and_cast_chain():
    graph = stage_graph()
    assert shared_stages() == ('toy_foundation', 'teacher_standin',
                               'student_foundation')
    assert all(not graph[k].upstream for k in shared_stages())
    chain = cast_chain()
    assert chain == ('adapt_teacher', 'adapt_teacher_selftrain', 'distill',
                     'finetune')
    # each is handed θ_T^0 or a checkpoint of the one before
    for before, key in zip((TEACHER0, ) + chain, chain):
        assert before in dict(graph[key].handoffs).values(), key
    # --iters: the pre-training, then the chain by key or label
    assert ITERS_STAGES == ('pretrain', ) + chain
    assert ITERS_ALIASES == {'1a': 'adapt_teacher',
                             '1b': 'adapt_teacher_selftrain', '2': 'distill',
                             '3': 'finetune'}


def test_labels_default_to_the_key():
    graph = stage_graph()
    assert (graph['distill'].label, graph['distill'].name,
            graph['distill'].title) == ('2', 'stage 2',
                                        'CAST student, stage 2')
    pretrained = graph['teacher_pretrained']
    assert pretrained.label == pretrained.name == pretrained.title == \
        'teacher_pretrained'


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


@pytest.mark.parametrize('entries,unknown,says', [
    ({'a': {'upstream': ['ghost'], 'handoffs': {}}}, 'ghost', 'no stage'),
    ({'a': {'upstream': [], 'handoffs': {}},
      'b': {'upstream': ['a'], 'handoffs': {'load_from': 'phantom'}}},
     'phantom', 'no stage'),
    ({'a': {'upstream': [], 'handoffs': {}},
      'b': {'upstream': ['a'], 'handoffs': {'x': 'a'}, 'choices': {
          'x': {'one': 'a', 'two': ['a', 'ghost']}}}}, 'ghost', 'no stage'),
    ({'b': {'upstream': ['a'], 'handoffs': {}},
      'a': {'upstream': [], 'handoffs': {}}}, "['a']", 'after it'),
])
def test_a_table_naming_an_unknown_stage_is_refused(tmp_path, entries,
                                                    unknown, says):
    path = write_table(tmp_path, entries)
    with pytest.raises(PipelineError) as error:
        stage_graph(str(tmp_path))
    assert path in str(error.value) and unknown in str(error.value)
    assert says in str(error.value)


def test_another_roots_table(tmp_path):
    write_table(tmp_path, {
        'b': {'upstream': [], 'handoffs': {}},
        'a': {'upstream': ['b'], 'handoffs': {'load_from': TEACHER0},
              'pseudo_labels': 'x'}})
    assert stage_keys(str(tmp_path)) == ('b', 'a')
    assert stage_graph(str(tmp_path))['a'].pseudo_labels == 'x'
    assert 'distill' in stage_graph()  # the repository's, unchanged
