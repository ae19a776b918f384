# Copyright (c) mmcast contributors. All rights reserved.
"""The ``PseudoLabeledDataset`` s of a train dataset, reloaded in place.

The train dataset is built before its pseudo-labels are (re)written; these
functions find every ``PseudoLabeledDataset`` inside dataset wrappers,
check that they read the file that is written and reload those that loaded
another version of it.
"""
import logging
import os.path as osp
from typing import List, Optional

from mmengine.logging import print_log

from mmcast.pseudo_labels.staleness import loaded_file_is_current
from .pseudo_labeled_dataset import PseudoLabeledDataset


def find_pseudo_labeled_datasets(dataset) -> List[PseudoLabeledDataset]:
    """Every ``PseudoLabeledDataset`` inside ``dataset``.

    Walks dataset wrappers: ``.datasets`` (ConcatDataset) and ``.dataset``
    (RepeatDataset, ClassBalancedDataset, torch ``Subset``).
    """
    found, seen, stack = [], set(), [dataset]
    while stack:
        ds = stack.pop()
        if ds is None or id(ds) in seen:
            continue
        seen.add(id(ds))
        if isinstance(ds, PseudoLabeledDataset):
            found.append(ds)
            continue
        children = getattr(ds, 'datasets', None)
        if isinstance(children, (list, tuple)):
            stack.extend(reversed(children))
        child = getattr(ds, 'dataset', None)
        if child is not None and not isinstance(child, (str, dict)):
            stack.append(child)
    return found


def _wrappers_of(root, target) -> list:
    """The chain of wrappers from ``root`` down to ``target``."""
    def walk(ds, chain):
        if ds is target:
            return chain
        kids = list(getattr(ds, 'datasets', None) or [])
        child = getattr(ds, 'dataset', None)
        if child is not None and not isinstance(child, (str, dict)):
            kids.append(child)
        for kid in kids:
            got = walk(kid, chain + [ds])
            if got is not None:
                return got
        return None

    return walk(root, []) or []


def pseudo_label_file(datasets: List[PseudoLabeledDataset],
                      out_file: Optional[str]) -> str:
    """The absolute path of the pseudo-label file to write: ``out_file``,
    which all ``datasets`` must read, or else the one file they read.

    Without ``datasets`` the file is ``out_file``, with a warning that
    nothing reads it.

    Args:
        datasets (list[PseudoLabeledDataset]): Those of the train dataset.
        out_file (str, optional): The file that is written.

    Raises:
        ValueError: Neither ``datasets`` nor ``out_file``; several files
            read and no ``out_file``; a dataset reads another file than
            ``out_file``.
    """
    if not datasets:
        if out_file is None:
            raise ValueError('PseudoLabelHook: no PseudoLabeledDataset in '
                             'the train dataloader and no out_file')
        out = osp.abspath(out_file)
        print_log(
            'PseudoLabelHook: no PseudoLabeledDataset in the train '
            f'dataloader; {out} is written but read by nothing',
            logger='current', level=logging.WARNING)
        return out
    paths = sorted({osp.abspath(ds.ann_file) for ds in datasets})
    if out_file is None:
        if len(paths) != 1:
            raise ValueError(
                'PseudoLabelHook: out_file is not set and the train '
                f'dataloader has {len(paths)} PseudoLabeledDataset '
                f'files {paths}: set out_file')
        return paths[0]
    out = osp.abspath(out_file)
    wrong = [p for p in paths if p != out]
    if wrong:
        raise ValueError(
            f'PseudoLabelHook writes {out} but a PseudoLabeledDataset '
            f'of the train dataloader reads {wrong[0]}: make its '
            'ann_file (joined with data_root) the same file')
    return out


def reload_pseudo_labeled_datasets(root, datasets: List[PseudoLabeledDataset],
                                   unlabeled_ann_file: str) -> bool:
    """Reload those of ``datasets`` (inside ``root``) that did not load the
    pseudo-label file as it is now.

    The sample order (and number) stays that of the unlabeled set, so a
    sampler built on the dataset stays valid. A ``ClassBalancedDataset``
    above a reloaded dataset keeps its repeat factors: a warning says so.

    Args:
        root: The train dataset (wrappers included).
        datasets (list[PseudoLabeledDataset]): Those inside ``root``.
        unlabeled_ann_file (str): The unlabeled json that was labeled, for
            the error message.

    Returns:
        bool: Whether any dataset was reloaded.

    Raises:
        RuntimeError: A dataset does not accept the file (it belongs to
            another unlabeled set) or changed its length.
    """
    reloaded = False
    for ds in datasets:
        if ds.pseudo_labels_loaded and loaded_file_is_current(ds):
            continue  # built from the current file already
        before = len(ds)
        if not ds.reload():
            raise RuntimeError(
                f'PseudoLabelHook: {ds.ann_file} was written but the '
                'PseudoLabeledDataset does not accept it: its '
                f'unlabeled_ann_file ({ds.unlabeled_ann_file}) is not '
                f'the unlabeled set that was labeled ({unlabeled_ann_file})')
        if len(ds) != before:  # cannot happen: reload keeps the order
            raise RuntimeError(
                f'{ds.ann_file}: dataset length changed on reload '
                f'({before} -> {len(ds)})')
        reloaded = True
        for wrapper in _wrappers_of(root, ds):
            if type(wrapper).__name__ == 'ClassBalancedDataset':
                print_log(
                    'PseudoLabelHook: a ClassBalancedDataset wraps '
                    f'{ds.ann_file}; its repeat factors were computed '
                    'before the pseudo-labels existed: restart the run '
                    'to use them', logger='current', level=logging.WARNING)
    return reloaded
