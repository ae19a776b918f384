# Copyright (c) mmcast contributors. All rights reserved.
"""The stage graph (``configs/mmcast/stage_graph.json``): what each stage is
made from, and what it is called, in one table.

Each entry is a stage key (those of the table of stage configs, and the
pipeline's own ``teacher_standin`` and ``teacher_pretrained``) with

* ``upstream``: the stages it is made from. The runner starts a stage after
  them, and ``--reuse-from`` links a stage only when they are linked too;
* ``handoffs``: ``{config key: source}``, the checkpoint each key of its
  config gets, the final checkpoint of the stage ``source`` or, for
  :data:`TEACHER0`, θ_T^0 (pre-trained on the toy source corpus, the
  stand-in, or ``--pretrained-teacher``);
* ``choices`` (optional): ``{config key: {choice: source}}``, the sources
  ``--distill-teacher`` picks from instead (a list: each source's
  checkpoint, one teacher of them);
* ``pseudo_labels`` (optional): the name of the pseudo-label file its
  ``PseudoLabelHook`` writes;
* ``label``, ``name``, ``title`` (optional, the key where absent): its short
  label (the real-size smoke's lines, ``--iters``' aliases), its name in
  the pipeline's log and its title in figures.

A stage comes after the stages it is made from, so the table's order is one
to run it in. The planner, the reuse check, the real-size smoke's chain and
the stage guide's table are read from it.
"""
import json
import os.path as osp
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Mapping, Optional, Tuple, Union

from .errors import PipelineError
from .overrides import Overrides
from .project_root import REPO_ROOT

GRAPH = osp.join('configs', 'mmcast', 'stage_graph.json')
# the source of a hand-off that is θ_T^0
TEACHER0 = 'teacher0'
# a hand-off's source: one stage (or θ_T^0), or several (one teacher)
Source = Union[str, Tuple[str, ...]]


@dataclass(frozen=True)
class StageNode:
    """One stage of the graph.

    Args:
        key (str): The stage key.
        upstream (tuple[str]): The stages it is made from.
        handoffs (tuple[tuple[str, str]]): ``(config key, source)`` pairs.
        pseudo_labels (str, optional): Its pseudo-label file's name.
        choices (tuple): ``(config key, ((choice, source), ...))`` pairs:
            the sources ``--distill-teacher`` picks from.
        label (str): Its short label, e.g. ``'1a'``.
        name (str): Its name in the log, e.g. ``'stage 1a'``.
        title (str): Its title in figures, e.g. ``'teacher after stage
            1a'``.
    """
    key: str
    upstream: Tuple[str, ...]
    handoffs: Tuple[Tuple[str, str], ...]
    pseudo_labels: Optional[str] = None
    choices: Tuple[Tuple[str, Tuple[Tuple[str, Source], ...]], ...] = ()
    label: str = ''
    name: str = ''
    title: str = ''

    def chosen(self, choice: str) -> Dict[str, Source]:
        """``{config key: source}`` of the hand-offs ``choice`` (a value of
        ``--distill-teacher``) gives another source; empty for a stage
        without choices."""
        return {key: dict(options)[choice] for key, options in self.choices}

    def handoff_overrides(self, checkpoints: Mapping[str, object],
                          sources: Optional[Mapping[str, Source]] = None
                          ) -> Overrides:
        """The overrides that hand the stage its checkpoints.

        Args:
            checkpoints (Mapping): ``{source: checkpoint}``: the final
                checkpoint of each stage (and θ_T^0 as :data:`TEACHER0`);
                a value may be a list (a teacher of several checkpoints).
            sources (Mapping, optional): ``{config key: source}`` replacing
                the table's source of a key (:meth:`chosen`); a tuple of
                sources hands the key the list of their checkpoints.
        """
        sources = dict(sources or {})
        pairs = []
        for key, source in self.handoffs:
            source = sources.get(key, source)
            pairs.append((key, checkpoints[source] if isinstance(source, str)
                          else [checkpoints[s] for s in source]))
        return Overrides.of(pairs)


def _node(key: str, entry: dict) -> StageNode:
    choices = tuple(
        (config_key,
         tuple((choice, src if isinstance(src, str) else tuple(src))
               for choice, src in options.items()))
        for config_key, options in entry.get('choices', {}).items())
    return StageNode(
        key, tuple(entry['upstream']), tuple(entry['handoffs'].items()),
        entry.get('pseudo_labels'), choices, entry.get('label', key),
        entry.get('name', key), entry.get('title', key))


def _sources(node: StageNode) -> Tuple[str, ...]:
    """Every stage ``node`` names as upstream or source (θ_T^0 left out)."""
    named = list(node.upstream) + [s for _, s in node.handoffs]
    for _, options in node.choices:
        for _, src in options:
            named += [src] if isinstance(src, str) else list(src)
    return tuple(s for s in named if s != TEACHER0)


@lru_cache(maxsize=None)
def _graph(root: str) -> Dict[str, StageNode]:
    path = osp.join(root, GRAPH)
    with open(path, encoding='utf-8') as f:
        table = json.load(f)
    graph = {key: _node(key, entry) for key, entry in table.items()}
    for at, node in enumerate(graph.values()):
        named = _sources(node)
        unknown = [u for u in named if u not in graph]
        if unknown:
            raise PipelineError(f'{path}: {node.key} is made from '
                                f'{unknown}, which are no stage of it')
        later = [u for u in named if list(graph).index(u) >= at]
        if later:
            raise PipelineError(f'{path}: {node.key} is made from '
                                f'{later}, which come after it')
    return graph


def stage_graph(root: str = REPO_ROOT) -> Dict[str, StageNode]:
    """``{stage key: StageNode}`` of the table, in its order."""
    return dict(_graph(root))


def stage_keys(root: str = REPO_ROOT) -> Tuple[str, ...]:
    """The stage keys of the table, in its order: one to run them in (a
    stage after those it is made from)."""
    return tuple(_graph(root))


def upstream_of(key: str, transitive: bool = False,
                root: str = REPO_ROOT) -> Tuple[str, ...]:
    """The stages ``key`` is made from (``transitive``: and those they are
    made from, and so on), in the table's order."""
    graph = _graph(root)
    found = set(graph[key].upstream)
    if transitive:
        for up in reversed(stage_keys(root)):
            if up in found:
                found.update(graph[up].upstream)
    return tuple(k for k in graph if k in found)


def shared_stages(root: str = REPO_ROOT) -> Tuple[str, ...]:
    """The stages made from no other (θ_T^0's pre-training or stand-in, the
    students' backbone): a run's seeds share them."""
    return tuple(k for k, node in _graph(root).items() if not node.upstream)


def cast_chain(root: str = REPO_ROOT) -> Tuple[str, ...]:
    """CAST's chain (stages 1a, 1b, 2, 3): the stages handed θ_T^0 or the
    checkpoint of a stage of the chain, in the table's order."""
    chain = []
    for key, node in _graph(root).items():
        if any(s == TEACHER0 or s in chain for _, s in node.handoffs):
            chain.append(key)
    return tuple(chain)
