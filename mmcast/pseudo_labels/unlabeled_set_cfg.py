# Copyright (c) mmcast contributors. All rights reserved.
"""The dataset config of an unlabeled set to pseudo-label offline, made
from the teacher's config.

The test pipeline and metainfo come from the teacher config's
``test_dataloader.dataset`` (annotation-loading steps removed). Without an
image folder given, it follows the annotation file
(:func:`default_img_prefix`): the folder of the config's dataset that reads
that file, else of one of the same split (``train``, ``val``,
``train2017``, ...), else the test folder with its split replaced.
``tools/pseudo_label.py`` labels the set it describes.
"""
import copy
import os.path as osp
import re
from typing import Any, Iterator, Optional, Tuple

ANNOTATION_TRANSFORMS = ('LoadAnnotations', 'LoadPanopticAnnotations',
                         'LoadTextAnnotations')
# A split name in an annotation file or folder name: train, val2017, ...
SPLIT = re.compile(r'(?<![a-z])(train|val|test)(\d{4})?(?![a-z])')
# Dataset wrappers: their test set is no single annotation file.
DATASET_WRAPPERS = ('ConcatDataset', 'RepeatDataset', 'ClassBalancedDataset')


def split_of(path: str) -> Optional[str]:
    """The split an annotation file or folder is named after, if any."""
    found = SPLIT.findall(osp.basename(osp.normpath(path)).lower())
    return ''.join(found[-1]) if found else None


def _datasets(node: Any) -> Iterator[dict]:
    """Every dataset config (a dict with ``ann_file`` and ``data_prefix``)."""
    if isinstance(node, dict):
        if 'ann_file' in node and 'data_prefix' in node and \
                node.get('type') != 'PseudoLabeledDataset':
            yield node
        for value in node.values():
            yield from _datasets(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _datasets(value)


def default_img_prefix(cfg: Any, ann_file: str, data_root: str,
                       test_prefix: str) -> Tuple[str, str]:
    """The image folder of ``ann_file`` by the teacher config, and why.

    Args:
        cfg (Config): The teacher config.
        ann_file (str): The unlabeled annotation file as given.
        data_root (str): The data root it is relative to.
        test_prefix (str): The test dataset's image folder.

    Returns:
        tuple[str, str]: The folder (relative to ``data_root``, as
        ``data_prefix.img``) and where it comes from.
    """
    wanted = osp.normpath(osp.join(data_root, ann_file))
    loaders = [cfg.get(k) for k in ('train_dataloader', 'val_dataloader',
                                    'test_dataloader')]
    candidates = list(_datasets(loaders + [cfg.get('custom_hooks')]))
    for ds in candidates:
        path = osp.join(ds.get('data_root') or data_root, ds['ann_file'])
        if osp.normpath(path) == wanted and \
                (ds.get('data_root') or data_root) == data_root:
            return ds['data_prefix']['img'], f'the dataset reading {ann_file}'
    split = split_of(ann_file)
    if split is None:
        return test_prefix, 'the test dataset (no split in the file name)'
    for ds in candidates:
        if split_of(ds['ann_file']) == split and \
                (ds.get('data_root') or data_root) == data_root:
            return ds['data_prefix']['img'], f'the config\'s {split} dataset'
    test_split = split_of(test_prefix)
    if test_split is not None:
        prefix = re.sub(rf'(?<![a-z]){test_split}(?![a-z0-9])', split,
                        test_prefix)
        return prefix, f'the test folder with {test_split} -> {split}'
    return test_prefix, 'the test dataset'


def unlabeled_set_cfg(cfg: Any,
                      ann_file: str,
                      data_root: Optional[str] = None,
                      img_prefix: Optional[str] = None,
                      dataset_type: Optional[str] = None
                      ) -> Tuple[dict, Optional[str]]:
    """The teacher config's test dataset on the images of ``ann_file``.

    Args:
        cfg (Config): The teacher config.
        ann_file (str): COCO json of the unlabeled images (a path; if it
            does not exist as given it is taken relative to the data root).
        data_root (str, optional): Replaces the config's data root.
        img_prefix (str, optional): The image folder under the data root;
            by default :func:`default_img_prefix`.
        dataset_type (str, optional): Replaces the config's dataset class
            (default ``CocoDataset`` where the config names none).

    Returns:
        tuple: The test-mode dataset config, and where its image folder
        comes from (``None`` when ``img_prefix`` was given).

    Raises:
        ValueError: When the config's test dataset is a wrapper or has no
            pipeline.
    """
    test_loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    base = copy.deepcopy(test_loader['dataset']) if test_loader else {}
    if base.get('type') in DATASET_WRAPPERS:
        raise ValueError('the teacher config\'s test dataset is a wrapper; '
                         'give --dataset-type and a plain '
                         'test_dataloader.dataset')
    ds = {
        k: v
        for k, v in base.items()
        if k not in ('ann_file', 'filter_cfg', 'indices', 'test_mode')
    }
    if dataset_type:
        ds['type'] = dataset_type
    ds.setdefault('type', 'CocoDataset')
    if data_root is not None:
        ds['data_root'] = data_root
    why = None
    if img_prefix is None:
        img_prefix, why = default_img_prefix(
            cfg, ann_file, ds.get('data_root', ''),
            ds.get('data_prefix', {}).get('img', ''))
    ds['data_prefix'] = dict(img=img_prefix)
    ds['ann_file'] = osp.abspath(ann_file) if osp.exists(ann_file) \
        else ann_file
    pipeline = [
        t for t in base.get('pipeline', [])
        if t.get('type') not in ANNOTATION_TRANSFORMS
    ]
    if not pipeline:
        raise ValueError('the teacher config has no '
                         'test_dataloader.dataset.pipeline')
    ds['pipeline'] = pipeline
    ds['test_mode'] = True
    return ds, why
