# Copyright (c) mmcast contributors. All rights reserved.
"""Labeled / unlabeled splits of a COCO-format annotation file.

Semi-supervised benchmarks (Cityscapes 5/10/30 %, ADE20K 10 %, COCO
1/2/5/10 %) train on a labeled subset D_l of the train images and treat the
rest as unlabeled D_u. Unlike MMDetection's ``tools/misc/split_coco.py``
(which samples with replacement and comes out under the percent), the draw
here is exact and without replacement, seeded, and byte-for-byte
reproducible; a published image list can replace the draw (the lists of
``mmcast/datasets/splits/`` by name, e.g. ``cityscapes/perc_10``).
"""
import glob
import json
import math
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

import numpy as np

from mmcast.utils import atomic_dump_json, atomic_open


SPLITS_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'splits')


def published_split_names() -> List[str]:
    """The image lists shipped in ``mmcast/datasets/splits``, by name
    (``'cityscapes/perc_10'``)."""
    return sorted(
        osp.splitext(osp.relpath(p, SPLITS_DIR))[0]
        for p in glob.glob(osp.join(SPLITS_DIR, '*', '*.txt')))


def published_split_file(name_or_path: str) -> str:
    """The file of an image list: ``name_or_path`` itself when it is a file,
    else the shipped list of that name (``'cityscapes/perc_10'``, with or
    without ``.txt``).

    Raises:
        FileNotFoundError: neither a file nor a shipped list; the message
            lists the shipped names.
    """
    if osp.isfile(name_or_path):
        return name_or_path
    name = name_or_path[:-len('.txt')] if name_or_path.endswith('.txt') \
        else name_or_path
    if name in published_split_names():
        return osp.join(SPLITS_DIR, name + '.txt')
    raise FileNotFoundError(
        f'image list not found: {name_or_path} (neither a file nor one of '
        f'the published lists shipped with mmcast: '
        f'{", ".join(published_split_names())})')


def split_command(ann_file: str,
                  source: Optional[str] = None) -> Optional[str]:
    """The ``tools/split_semi.py`` command that writes the split file
    ``ann_file`` (``<stem>.<seed>@<tag>[-unlabeled].json``, as
    :func:`write_split` names it), or ``None`` for another name.

    Args:
        ann_file (str): The split file.
        source (str, optional): The annotation file it is split from
            (default: ``<<stem>.json>``, a placeholder).
    """
    match = re.fullmatch(r'(.+)\.(\d+)@([^@]+?)(-unlabeled)?\.json',
                         osp.basename(ann_file))
    if match is None:
        return None
    stem, seed, tag = match.group(1), match.group(2), match.group(3)
    lists = [n for n in published_split_names() if n.endswith('/' + tag)]
    if lists:
        how = f'--image-list {lists[0]}'
    elif re.fullmatch(r'\d+(\.\d+)?', tag):
        how = f'--percent {tag} --seed {seed}'
    elif re.fullmatch(r'n\d+', tag):
        how = f'--count {tag[1:]} --seed {seed}'
    else:
        return None
    return (f'python tools/split_semi.py {source or f"<{stem}.json>"} {how} '
            f'--out-dir {osp.dirname(ann_file) or "."}')


def load_coco_json(ann_file: str) -> dict:
    """Load a COCO-format json with an error that names the file."""
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'annotation file not found: {ann_file}')
    try:
        with open(ann_file, encoding='utf-8') as f:
            coco = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{ann_file} is not valid json: {e}') from e
    for key in ('images', 'annotations', 'categories'):
        if key not in coco:
            raise KeyError(f'{ann_file} has no "{key}" key: not a COCO '
                           'instance annotation file')
    return coco


def num_labeled_images(num_images: int,
                       percent: Optional[float] = None,
                       count: Optional[int] = None) -> int:
    """How many images a ``percent`` (0, 100] or a ``count`` selects."""
    if (percent is None) == (count is None):
        raise ValueError('give exactly one of percent and count')
    if percent is not None:
        if not 0 < percent <= 100:
            raise ValueError(f'percent must be in (0, 100], got {percent}')
        return max(1, int(math.floor(num_images * percent / 100 + 0.5)))
    if not 0 < count <= num_images:
        raise ValueError(
            f'count must be in [1, {num_images}] (the number of images), '
            f'got {count}')
    return count


def _match_image_list(images: List[dict], names: Sequence[str],
                      list_file: str) -> List[int]:
    """Ids of the images named in a published split list.

    Entries are matched on their stem, so ``*_gtFine_instanceIds.png`` names
    (Guided Distillation's Cityscapes lists) match ``*_leftImg8bit.png``
    file names.
    """

    def stem(name: str) -> str:
        base = osp.splitext(osp.basename(name))[0]
        for suffix in ('_gtFine_instanceIds', '_leftImg8bit'):
            if base.endswith(suffix):
                return base[:-len(suffix)]
        return base

    by_stem: Dict[str, int] = {stem(img['file_name']): img['id'] for img in images}
    ids, missing = [], []
    for name in names:
        if stem(name) in by_stem:
            ids.append(by_stem[stem(name)])
        else:
            missing.append(name)
    if missing:
        raise ValueError(f'{len(missing)} entries of {list_file} match no image '
                         f'of the annotation file, e.g. {missing[0]!r}')
    return ids


def split_coco(coco: dict,
               seed: int = 1,
               percent: Optional[float] = None,
               count: Optional[int] = None,
               image_list: Optional[Sequence[str]] = None,
               list_file: str = '<image list>',
               labeled_pool: Optional[int] = None) -> Dict[str, dict]:
    """Split a COCO dict into a labeled and an unlabeled part.

    Args:
        coco (dict): A COCO instance-annotation dict.
        seed (int): Seed of the draw.
        percent (float, optional): Share of images labeled, in (0, 100].
        count (int, optional): Number of images labeled (instead of percent).
        image_list (Sequence[str], optional): Names of the labeled images
            (instead of a draw).
        list_file (str): Where ``image_list`` came from, for error messages.
        labeled_pool (int, optional): Draw the labeled images among the
            first ``labeled_pool`` images by id only (``percent`` of them);
            the images after them are all unlabeled. With it, adding images
            to a dataset adds unlabeled images and keeps the labeled draw.

    Returns:
        dict: ``labeled`` (images and their annotations), ``unlabeled``
        (the other images, no annotations) and ``labeled_ids`` (sorted list).
    """
    images = sorted(coco['images'], key=lambda img: img['id'])
    if image_list is not None:
        labeled = set(_match_image_list(images, image_list, list_file))
    else:
        pool = len(images) if labeled_pool is None else labeled_pool
        if not 0 < pool <= len(images):
            raise ValueError(f'labeled_pool must be in [1, {len(images)}] '
                             f'(the number of images), got {labeled_pool}')
        n = num_labeled_images(pool, percent, count)
        rng = np.random.default_rng(seed)
        order = rng.permutation(pool)[:n]
        labeled = {images[i]['id'] for i in order}

    def subset(keep_labeled: bool) -> dict:
        out = {k: v for k, v in coco.items() if k not in ('images', 'annotations')}
        out['images'] = [img for img in images if (img['id'] in labeled) == keep_labeled]
        out['annotations'] = [
            ann for ann in coco['annotations'] if ann['image_id'] in labeled
        ] if keep_labeled else []
        return out

    return dict(
        labeled=subset(True), unlabeled=subset(False), labeled_ids=sorted(labeled))


def write_split(ann_file: str,
                out_dir: str,
                seed: int = 1,
                percent: Optional[float] = None,
                count: Optional[int] = None,
                image_list_file: Optional[str] = None,
                labeled_pool: Optional[int] = None) -> Dict[str, str]:
    """Split ``ann_file`` and write the parts atomically (``labeled_pool``:
    see :func:`split_coco`).

    File names follow MMDetection's semi-supervised convention
    ``<stem>.<seed>@<tag>.json`` and ``<stem>.<seed>@<tag>-unlabeled.json``
    (``tag`` = percent, ``n<count>`` or the list's stem), plus
    ``<stem>.<seed>@<tag>.ids.txt`` with the labeled image ids.

    Returns:
        dict: Paths of ``labeled``, ``unlabeled`` and ``ids``.
    """
    coco = load_coco_json(ann_file)
    names = None
    if image_list_file is not None:
        image_list_file = published_split_file(image_list_file)
        with open(image_list_file, encoding='utf-8') as f:
            names = [ln.strip() for ln in f if ln.strip()]
        tag = osp.splitext(osp.basename(image_list_file))[0]
    elif percent is not None:
        tag = f'{percent:g}'
    else:
        tag = f'n{count}'
    parts = split_coco(coco, seed, percent, count, names,
                       image_list_file or '<image list>', labeled_pool)
    stem = osp.splitext(osp.basename(ann_file))[0]
    prefix = osp.join(out_dir, f'{stem}.{seed}@{tag}')
    paths = dict(
        labeled=f'{prefix}.json',
        unlabeled=f'{prefix}-unlabeled.json',
        ids=f'{prefix}.ids.txt')
    atomic_dump_json(parts['labeled'], paths['labeled'])
    atomic_dump_json(parts['unlabeled'], paths['unlabeled'])
    with atomic_open(paths['ids'], 'w', encoding='utf-8') as f:
        f.writelines(f'{i}\n' for i in parts['labeled_ids'])
    return paths
