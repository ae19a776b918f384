# Copyright (c) mmcast contributors. All rights reserved.
"""``--labeled-split SEED@TAG``: every stage and method of a run on another
labeled split D_l (and its complement D_u).

The dataset bases of Cityscapes, ADE20K and COCO name their split files as
``tools/split_semi.py`` writes them, ``<stem>.<seed>@<tag>.json`` and
``<stem>.<seed>@<tag>-unlabeled.json`` (``labeled_ann_file`` of the base);
every stage config reads them from there, wherever it keeps its datasets
(the labeled-only loader, the ``sup`` and ``unsup`` sources, Guided
Distillation's class-balanced wrapper, the ``PseudoLabelHook``'s D_u). The
options of a stage are found by value: every string of its training data
and hooks that names a file of the config's split gets the same file of the
other split.
"""
import os.path as osp
import re
from typing import Iterator, Optional, Tuple

from .errors import PipelineError
from .overrides import Overrides

# a split as tools/split_semi.py names it: seed @ percent or list name
SPLIT_NAME = re.compile(r'^\d+@[A-Za-z0-9_.]+$')
_SPLIT_FILE = re.compile(r'\.(\d+@[A-Za-z0-9_.]+?)\.json$')
# the parts of a stage config that read D_l or D_u
SPLIT_READERS = ('train_dataloader', 'custom_hooks')


def config_split(cfg) -> Optional[str]:
    """The split (``'1@perc_10'``) a stage config reads: that of its
    dataset base's ``labeled_ann_file``; ``None`` without one."""
    name = cfg.get('labeled_ann_file')
    found = _SPLIT_FILE.search(osp.basename(name)) if isinstance(
        name, str) else None
    return found.group(1) if found else None


def check_split_name(split: str) -> None:
    """Refuse a ``--labeled-split`` that is no split file name.

    Raises:
        PipelineError: Naming the expected form.
    """
    if not SPLIT_NAME.match(split):
        raise PipelineError(
            f'--labeled-split {split!r}: expected SEED@TAG as '
            'tools/split_semi.py names its files, e.g. 1@perc_10 (a '
            'published list) or 1@10 (a seeded 10 % draw, seed 1)')


def labeled_split_options(cfg, split: str) -> Overrides:
    """The overrides that make a stage config read ``split`` instead of
    its own (:func:`config_split`); none when they are the same.

    Raises:
        PipelineError: The config names no split (a dataset without
            semi-supervised split files).
    """
    own = config_split(cfg)
    if own is None:
        raise PipelineError(
            f'--labeled-split: {cfg.filename} names no labeled split file '
            '(labeled_ann_file) to replace')
    if own == split:
        return Overrides()
    old = re.compile(re.escape(f'.{own}') + r'(?=(-unlabeled)?\.json$)')
    options = []
    for key, value in _strings(cfg, SPLIT_READERS):
        new = old.sub(f'.{split}', value)
        if new != value:
            options.append((key, new))
    return Overrides.of(options)


def _strings(cfg, roots) -> Iterator[Tuple[str, str]]:
    """``(dotted key, value)`` of every string under ``roots``."""
    def walk(node, key):
        if isinstance(node, str):
            yield key, node
        elif isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, f'{key}.{k}')
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                yield from walk(v, f'{key}.{i}')

    for root in roots:
        if root in cfg:
            yield from walk(cfg[root], root)
