# Copyright (c) mmcast contributors. All rights reserved.
"""How much of a model a checkpoint initialises.

MMEngine loads checkpoints with ``strict=False``: the weights a checkpoint
lacks (or holds with other shapes) stay random, said only in a stage log's
warning; an R-18 checkpoint for an R-34 trains to the end without its
deeper blocks (``backbone.layer1.2``, ...). :func:`checkpoint_coverage`
counts what a checkpoint provides, names the modules it lacks and the
share of each part (``backbone``, ``panoptic_head.pixel_decoder``, ...)
left random; :class:`InitTarget` reads it as MMEngine loads it (into the
model, or, for an ``init_cfg``, into a module from the keys under a
prefix).
"""
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, NamedTuple, Optional

from .checkpoint_loading import RevisedKeys, revise_key, state_dict_of

# A checkpoint is partial when it leaves more than RANDOM_SHARE of one of
# PARTS random, or lacks numbered blocks of one whose siblings it holds
# (a shallower model: an R-18 leaves 47 % of an R-34's backbone random).
RANDOM_SHARE = 0.5
PARTS = ('backbone', 'neck', 'panoptic_head.pixel_decoder')
HEADS = ('panoptic_head', 'decode_head')  # parts: two key components
WRAPPERS = ('student', 'module')  # not in part names
NAMED = 6  # modules named in a message, then "and N more"


def _unwrapped(key: str) -> List[str]:
    names = key.split('.')
    while len(names) > 1 and names[0] in WRAPPERS:
        names = names[1:]
    return names


def part_of(key: str) -> str:
    """The part a weight (or module) is in: ``backbone``,
    ``panoptic_head.pixel_decoder``, ... (a distiller's ``student.`` left
    out)."""
    names = _unwrapped(key)
    return '.'.join(names[:2] if names[0] in HEADS else names[:1])


def _named(names: List[str]) -> str:
    more = f' and {len(names) - NAMED} more' if len(names) > NAMED else ''
    return ', '.join(names[:NAMED]) + more


def _count(numel: int) -> str:
    return f'{numel / 1e6:.1f} M' if numel >= 1e5 else f'{numel:,}'


def _percent(share: float) -> str:
    percent = math.floor(100 * share)
    return '<1 %' if 0 < share and not percent else f'{percent} %'


@dataclass(frozen=True)
class InitTarget:
    """Where a checkpoint is loaded and how its keys are read.

    Args:
        module (str): The module it initialises (``''``: the model,
            ``'backbone'``: an ``init_cfg`` of the backbone).
        prefix (str, optional): Only its keys under ``prefix`` are read,
            without it (``init_cfg=dict(..., prefix='backbone.')``).
        revise_keys (Sequence[tuple]): Key rewrites applied first.
    """
    module: str = ''
    prefix: Optional[str] = None
    revise_keys: RevisedKeys = ()

    @property
    def whole(self) -> bool:
        """Whether it initialises a whole detector (its classifier too)."""
        return not self.module or _unwrapped(self.module + '.x') == ['x']

    def weights(self, checkpoint: dict) -> Dict[str, object]:
        """A checkpoint's weights under the model's keys."""
        state_dict = state_dict_of(checkpoint)
        prefix = self.prefix.rstrip('.') + '.' if self.prefix else ''
        inside = f'{self.module}.' if self.module else ''
        revised = (revise_key(k, self.revise_keys) for k in state_dict)
        return {inside + key[len(prefix):]: value
                for key, value in zip(revised, state_dict.values())
                if key.startswith(prefix)}


def init_target(model_cfg: dict, where: str) -> Optional[InitTarget]:
    """How the checkpoint at ``where`` of ``model_cfg`` is loaded:
    ``model.teacher_checkpoint`` (a frozen teacher, maybe a distiller's
    student) or an ``init_cfg``'s (``model.backbone.init_cfg.checkpoint``);
    ``None`` for another."""
    if where == 'model.teacher_checkpoint':
        return InitTarget(revise_keys=((r'^student\.', ''),
                                       (r'^module\.', '')))
    names = where.split('.')[1:-1]
    if 'init_cfg' not in names:
        return None
    node = model_cfg
    for name in names:
        node = node[int(name)] if isinstance(node, (list, tuple)) \
            else node.get(name) or {}
    prefix = node.get('prefix') if isinstance(node, dict) else None
    return InitTarget('.'.join(names[:names.index('init_cfg')]), prefix,
                      () if prefix else ((r'^module\.', ''), ))  # MMEngine


class Findings(NamedTuple):
    """Lines for the preflight (as :class:`~mmcast.utils.coco_file_checks.
    Findings`)."""
    notes: List[str]
    problems: List[str]


@dataclass
class Coverage:
    """What a checkpoint provides of a model (or of one of its modules).

    Args:
        model (str): The model (and module), for the messages.
        total, provided (int): Its weights (numel), and those the
            checkpoint holds with the right shape.
        tensors, tensors_provided (int): The same, in tensors.
        missing (list[str]): The largest modules wholly absent from it.
        reshaped (list[str]): Modules with weights of other shapes: the
            stage re-initialises them (e.g. a classifier of other classes),
            not counted as missing.
        random_share (dict): ``{part: share left random}``, most first.
        partial (list[str]): The parts of :data:`PARTS` it falls short in.
    """
    model: str
    total: int = 0
    provided: int = 0
    tensors: int = 0
    tensors_provided: int = 0
    missing: List[str] = field(default_factory=list)
    reshaped: List[str] = field(default_factory=list)
    random_share: Dict[str, float] = field(default_factory=dict)
    partial: List[str] = field(default_factory=list)

    def findings(self, path: str, who: str,
                 allow_partial: bool = False) -> Findings:
        """The note (none: the model has no weights there) and the problem
        (unless ``allow_partial``) of the checkpoint ``path`` read by
        ``who``."""
        if self.provided == self.total:
            return Findings([f'{path}: provides all {_count(self.total)} '
                             f'weights of {self.model} ({who})'
                             ] if self.tensors else [], [])
        shares = [f'{part} {_percent(s)}'
                  for part, s in self.random_share.items()]
        note = (f'{path}: provides {_count(self.provided)} of the '
                f'{_count(self.total)} weights of {self.model} ('
                f'{_percent(self.provided / self.total)}, '
                f'{self.tensors_provided} of {self.tensors} tensors; left '
                f'random: {_named(shares)}); {self._modules()}'
                f' ({who})')
        if not self.partial or allow_partial:
            return Findings([note + (' (partial: --allow-partial-init)'
                                     if self.partial else '')], [])
        parts = ', '.join(f'{_percent(self.random_share[part])} of {part}'
                          for part in self.partial)
        return Findings([note], [
            f'{path} ({who}) initialises {self.model} only in part: it '
            f'leaves {parts} random ({self._modules(self.partial)}). A '
            'checkpoint of another model? Give one of this architecture, '
            'or pass --allow-partial-init if this is meant'])

    def _modules(self, parts: Optional[List[str]] = None) -> str:
        """``missing: ...; other shapes ...: ...``: the modules (in, or
        holding, one of ``parts`` only)."""
        def within(module: str) -> bool:
            names = '.'.join(_unwrapped(module))
            return parts is None or any(
                f'{names}.'.startswith(f'{part}.') or
                part.startswith(f'{names}.') for part in parts)

        return '; '.join(
            f'{what}: {_named(found)}' for what, found in (
                ('missing', [m for m in self.missing if within(m)]),
                ('other shapes (re-initialised)',
                 [m for m in self.reshaped if within(m)])) if found)


def _largest(key: str, present: set) -> str:
    """The largest module of ``key`` that no present weight is in."""
    names = key.split('.')
    return next((module for module in ('.'.join(names[:n])
                                       for n in range(1, len(names)))
                 if module not in present), key)


def checkpoint_coverage(model_shapes: Mapping[str, object],
                        weights: Mapping[str, object],
                        module: str = '',
                        model: str = 'the model') -> Coverage:
    """How a checkpoint's weights cover a model.

    Args:
        model_shapes (Mapping): The model's state dict (tensors, on the
            ``meta`` device too, or shapes).
        weights (Mapping): The checkpoint's weights under the model's keys
            (:meth:`InitTarget.weights`).
        module (str): Only the model's weights in this module count.
        model (str): The model's name, for the messages.
    """
    inside = f'{module}.' if module else ''
    shapes = {k: tuple(getattr(v, 'shape', v)) for k, v in
              model_shapes.items() if k.startswith(inside)}
    held = {k for k in shapes if hasattr(weights.get(k), 'shape')}
    present = {'.'.join(k.split('.')[:n]) for k in held
               for n in range(1, k.count('.') + 2)}
    cover = Coverage(f"{model}'s {module}" if module else model,
                     tensors=len(shapes))
    totals, randoms = Counter(), Counter()
    for key, shape in shapes.items():
        size, part = math.prod(shape), part_of(key)
        totals[part] += size
        if key in held and tuple(weights[key].shape) == shape:
            cover.provided += size
            cover.tensors_provided += 1
            continue
        randoms[part] += size
        block, found = (_largest(key, present), cover.missing) \
            if key not in held else (key.rpartition('.')[0] or key,
                                     cover.reshaped)
        if block not in found:
            found.append(block)
    cover.total = sum(totals.values())
    cover.random_share = {part: numel / totals[part]
                          for part, numel in randoms.most_common()}
    for part in PARTS:
        shallower = [m for m in cover.missing if part_of(m) == part and
                     re.search(r'\.\d+$', m) and
                     m.rpartition('.')[0] in present]
        if shallower or cover.random_share.get(part, 0) > RANDOM_SHARE:
            cover.partial.append(part)
    return cover
