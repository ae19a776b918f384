# Copyright (c) mmcast contributors. All rights reserved.
"""The stage graph (``configs/mmcast/stage_graph.json``): what each stage is
made from, in one table.

Each entry is a stage key (those of the table of stage configs, and the
pipeline's own ``teacher_standin`` and ``teacher_pretrained``) with

* ``upstream``: the stages it is made from. The runner starts a stage after
  them, and ``--reuse-from`` links a stage only when they are linked too;
* ``handoffs``: ``{config key: source}``, the checkpoint each key of its
  config gets, the final checkpoint of the stage ``source`` or, for
  :data:`TEACHER0`, θ_T^0 (pre-trained on the toy source corpus, the
  stand-in, or ``--pretrained-teacher``);
* ``pseudo_labels`` (optional): the name of the pseudo-label file its
  ``PseudoLabelHook`` writes.

The planner, the reuse check, the real-size smoke's chain and the stage
guide's table are read from it.
"""
import json
import os.path as osp
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Mapping, Optional, Tuple

from .errors import PipelineError
from .overrides import Overrides
from .settings import REPO_ROOT

GRAPH = osp.join('configs', 'mmcast', 'stage_graph.json')
# the source of a hand-off that is θ_T^0
TEACHER0 = 'teacher0'


@dataclass(frozen=True)
class StageNode:
    """One stage of the graph.

    Args:
        key (str): The stage key.
        upstream (tuple[str]): The stages it is made from.
        handoffs (tuple[tuple[str, str]]): ``(config key, source)`` pairs.
        pseudo_labels (str, optional): Its pseudo-label file's name.
    """
    key: str
    upstream: Tuple[str, ...]
    handoffs: Tuple[Tuple[str, str], ...]
    pseudo_labels: Optional[str] = None

    def handoff_overrides(self, checkpoints: Mapping[str, object],
                          sources: Optional[Mapping[str, str]] = None
                          ) -> Overrides:
        """The overrides that hand the stage its checkpoints.

        Args:
            checkpoints (Mapping): ``{source: checkpoint}``: the final
                checkpoint of each stage (and θ_T^0 as :data:`TEACHER0`);
                a value may be a list (a teacher of several checkpoints).
            sources (Mapping, optional): ``{config key: source}`` replacing
                the table's source of a key (``--distill-teacher``); a tuple
                of sources hands the key the list of their checkpoints.
        """
        sources = dict(sources or {})
        pairs = []
        for key, source in self.handoffs:
            source = sources.get(key, source)
            pairs.append((key, checkpoints[source] if isinstance(source, str)
                          else [checkpoints[s] for s in source]))
        return Overrides.of(pairs)


@lru_cache(maxsize=None)
def _graph(root: str) -> Dict[str, StageNode]:
    path = osp.join(root, GRAPH)
    with open(path, encoding='utf-8') as f:
        table = json.load(f)
    graph = {}
    for key, entry in table.items():
        graph[key] = StageNode(
            key, tuple(entry['upstream']),
            tuple(entry['handoffs'].items()), entry.get('pseudo_labels'))
    for node in graph.values():
        unknown = [u for u in node.upstream + tuple(
            s for _, s in node.handoffs if s != TEACHER0) if u not in graph]
        if unknown:
            raise PipelineError(f'{path}: {node.key} is made from '
                                f'{unknown}, which are no stage of it')
    return graph


def stage_graph(root: str = REPO_ROOT) -> Dict[str, StageNode]:
    """``{stage key: StageNode}`` of the table, in its order."""
    return dict(_graph(root))


def stage_keys(root: str = REPO_ROOT) -> Tuple[str, ...]:
    """The stage keys of the table, in its order."""
    return tuple(_graph(root))
