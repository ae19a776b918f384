# Copyright (c) mmcast contributors. All rights reserved.
"""Which finished stages a run makes again, and why, decided as make does.

Before any stage starts, each finished stage's record
(:mod:`~mmcast.apis.pipeline.provenance`) is compared with what the run
would make it from now:

- its config (a value, a ``_base_`` file or an override edited), an input
  (a checkpoint, a teacher config, an annotation or val ground-truth file:
  changed, gone, or read now and not then) or its environment (the version
  of torch, mmcv, mmdet, mmengine or mmcast) changed: the stage is made
  again, and so is every stage made from it; one line each names what
  changed (a config's key with its old and new value, an input's file, a
  package's two versions);
- only mmcast's code changed: the stage is kept (a moved comment must not
  cost weeks of GPU time), the console says so and its row in the results
  table is marked ("made by code <hash>, now <hash>");
  ``--redo-on-code-change`` makes such stages again.

A test stage (θ_T^0 evaluated) follows the same rule. On several nodes
node 0 decides and every node takes its decision
(:func:`decide_together`) before any stage starts, so that all of them
join the same stages. ``--dry-run`` prints the decisions
(:func:`decision_lines`) and trains nothing.
"""
import dataclasses
import datetime
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

from mmcast.utils.stage_state import FINISHED, read_completion, stage_status
from .config_loader import ConfigLoader
from .launchers import LaunchConfig
from .planning import Plan
from .provenance import provenance, recorded_path, resolved_path
from .run_spec import RunSpec
from .stage import Stage

# config keys and files named at most in one line
SHOWN = 4
# the decisions' rendezvous: the port after the stages' --master-port
DECISION_PORT_OFFSET = 1


@dataclasses.dataclass(frozen=True)
class StageDecision:
    """What a run does with a stage that is finished.

    Args:
        redo (tuple[str]): Why it is made again (empty: it is kept).
        code (str, optional): ``made by code <hash>, now <hash>`` when
            mmcast's code changed since it was made.
    """
    redo: Tuple[str, ...] = ()
    code: Optional[str] = None


KEEP = StageDecision()


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + '...'


def _listed(items: List[str], what: str) -> str:
    more = len(items) - SHOWN
    return ', '.join(items[:SHOWN]) + (f' and {more} more {what}'
                                       if more > 0 else '')


def config_changes(old: Dict, new: Dict) -> List[str]:
    """``key: old → new`` of each key of two flat configs that differs (a
    key one of them lacks: ``(none)``)."""
    changed = []
    for key in sorted(set(old) | set(new)):
        if old.get(key, KeyError) != new.get(key, KeyError):
            before = _short(old[key]) if key in old else '(none)'
            after = _short(new[key]) if key in new else '(none)'
            changed.append(f'{key}: {before} → {after}')
    return changed


def what_changed(record: Optional[dict], now: dict,
                 work_dir: str) -> Tuple[List[str], Optional[str]]:
    """What changed since the stage of ``record`` (its completion record)
    was made, compared with ``now`` (its provenance as the run would make
    it): the reasons to make it again, and the code note (``None``: same
    code). A record without provenance (written before records had it)
    gives neither."""
    if not record or 'inputs' not in record:
        return [], None
    reasons = []
    versions = record.get('versions') or dict(
        mmcast=record.get('mmcast_version'))
    for name, version in now['versions'].items():
        if versions.get(name) not in (None, version):
            reasons.append(f'{name} {versions[name]} → {version}')
    if 'config' in record and \
            record.get('config_sha256') != now['config_sha256']:
        reasons.append('config ' + _listed(
            config_changes(record['config'], now['config']), 'keys'))
    for path, sha in record['inputs'].items():
        if path not in now['inputs']:
            gone = not osp.isfile(resolved_path(path, work_dir))
            reasons.append(f'{path} is gone' if gone else
                           f'it no longer reads {path}')
        elif now['inputs'][path] != sha:
            reasons.append(f'{path} changed since it was made')
    if 'versions' in record:  # a record that names every input it read
        reasons += [f'it reads {path} now' for path in now['inputs']
                    if path not in record['inputs']]
    return reasons, code_note(record.get('code'), now['code'])


def code_note(old: Optional[dict], new: dict) -> Optional[str]:
    """``made by code <hash>, now <hash> (<files> changed)``, or ``None``
    when the source is the same (or the record has no code identity)."""
    if not old or old.get('source_sha256') in (None,
                                                new['source_sha256']):
        return None
    files = old.get('files') or {}
    changed = [f for f in sorted(set(files) | set(new['files']))
               if files.get(f) != new['files'].get(f)]
    return (f'made by code {old["source_sha256"][:8]}, now '
            f'{new["source_sha256"][:8]}' +
            (f' ({_listed(changed, "files")} changed)' if changed else ''))


class ChangeDecider:
    """Decides, before any stage starts, which finished stages of a plan
    are made again.

    Args:
        spec (RunSpec): The run (``--redo-on-code-change``).
        loader (ConfigLoader): Its configs, as the stages load them.
    """

    def __init__(self, spec: RunSpec, loader: ConfigLoader) -> None:
        self.spec = spec
        self.loader = loader

    def decide(self, plan: Plan, results: Dict[int, Dict]
               ) -> Dict[str, StageDecision]:
        """``{stage work dir: decision}`` of every finished stage of
        ``plan`` (``results``: each seed's rows, where a test stage's
        row says it is done); a stage made from one that is made again,
        or from one not finished yet, is made again too."""
        decisions: Dict[str, StageDecision] = {}
        pending = set()  # work dirs that will train or test
        labels = {st.work_dir: st.label for st in plan.stages}
        for stage in plan.stages:
            if osp.islink(stage.work_dir):
                continue  # linked from --reuse-from, checked there
            if not self.done(stage, results):
                pending.add(stage.work_dir)
                continue
            reasons, code = self.changes(stage)
            if code and self.spec.redo_on_code_change:
                reasons.append(f'{code} (--redo-on-code-change)')
            remade = [up for up in stage.upstream if up in pending]
            if remade:  # its files are about to change: say it once
                marks = [recorded_path(up, self.spec.work_dir) + os.sep
                         for up in remade]
                reasons = [r for r in reasons
                           if not any(m in r for m in marks)]
                reasons += [f'made from {labels[up]}, which is made again'
                            for up in remade]
            decisions[stage.work_dir] = StageDecision(tuple(reasons), code)
            if reasons:
                pending.add(stage.work_dir)
        return decisions

    def done(self, stage: Stage, results: Dict[int, Dict]) -> bool:
        """Whether ``stage`` is finished (a test stage: its row is in its
        seed's results)."""
        if stage.max_iters is not None:
            return stage_status(stage.work_dir, stage.max_iters) == FINISHED
        return stage.key in results.get(stage.seed, {})

    def changes(self, stage: Stage) -> Tuple[List[str], Optional[str]]:
        """:func:`what_changed` for a finished ``stage``; a record without
        a config of its own is compared with the config MMEngine dumped."""
        record = read_completion(stage.work_dir)
        now = provenance(stage, self.loader.load(stage), self.spec.work_dir,
                         self.spec.env)
        reasons, code = what_changed(record, now, self.spec.work_dir)
        if record and 'inputs' in record and 'config' not in record and \
                not self.loader.same_config(stage, stage.work_dir):
            reasons.append('its config differs from the one it was made '
                           'with')
        return reasons, code


def decision_lines(plan: Plan, decisions: Dict[str, StageDecision]
                   ) -> List[str]:
    """One line per finished stage that is made again or was made by other
    code, as ``--dry-run`` and the run print them."""
    lines = []
    for stage in plan.stages:
        decision = decisions.get(stage.work_dir, KEEP)
        if decision.redo:
            lines.append(f'{stage.label} is made again: ' +
                         '; '.join(decision.redo))
        elif decision.code:
            lines.append(f'{stage.label} is kept, {decision.code}: its row '
                         'is marked (--redo-on-code-change makes it again)')
    return lines


def decide_together(decisions: Optional[Dict[str, StageDecision]],
                    launch: LaunchConfig, work_dir: str
                    ) -> Dict[str, StageDecision]:
    """Node 0's ``decisions`` on every node of a multi-node ``pytorch``
    run (a gloo broadcast at ``--master-addr``, port ``--master-port`` +
    :data:`DECISION_PORT_OFFSET`), else ``decisions`` as they are. Work
    dirs travel relative to ``work_dir``."""
    if launch.launcher != 'pytorch' or launch.nnodes == 1:
        return decisions or {}
    import torch.distributed as dist

    dist.init_process_group(
        'gloo', init_method=f'tcp://{launch.master_addr}:'
        f'{launch.master_port + DECISION_PORT_OFFSET}',
        rank=launch.node_rank, world_size=launch.nnodes,
        timeout=datetime.timedelta(minutes=30))
    try:
        box = [None]
        if launch.leads:
            box = [{osp.relpath(k, work_dir): dataclasses.asdict(v)
                    for k, v in (decisions or {}).items()}]
        dist.broadcast_object_list(box, src=0)
    finally:
        dist.destroy_process_group()
    return {osp.join(work_dir, k): StageDecision(tuple(v['redo']), v['code'])
            for k, v in box[0].items()}
