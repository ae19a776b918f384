# Copyright (c) mmcast contributors. All rights reserved.
"""Pseudo-labels as a COCO instance-segmentation json.

The file is a complete COCO json (``images`` = the unlabeled set's images,
``categories`` copied from it, RLE ``annotations`` with a ``score``) that
pycocotools, MMDetection's ``CocoDataset``/``CityscapesDataset`` and
``browse_dataset`` read as they are. Its ``info`` field carries a header::

    {'mmcast_pseudo_labels': {
        'teacher': 'configs/teacher.py',        # config path or a name
        'checkpoint': 'work_dirs/teacher.pth',
        'checkpoint_sha256': '...',
        'unlabeled_ann_file': 'data/.../unlabeled.json',
        'unlabeled_sha256': '...',
        'filter': {'score_thr': 0.3, 'max_per_image': 100, 'mask_thr': 0.5,
                   'non_overlapping': True, 'min_area': 1},
        'num_images': 2677, 'num_skipped': 0, 'skipped': [],
        'num_instances': 41234, 'num_capped_images': 0, 'num_over_cap': 0,
        'mmcast_version': '...'}}

``num_capped_images`` counts the images where a cap (the teacher's
``max_per_image`` or the filter's) left out instances above the score
threshold, ``num_over_cap`` those instances.

:func:`is_current` compares the identity fields (:data:`IDENTITY_KEYS`) so
that a stage re-labels only when the teacher, its weights, the unlabeled
set or the thresholds changed; :func:`stale_reason` says which. ``info`` is
written first in the file, so the header is read without parsing the
(possibly large) annotations; a file cut short (which does not end as the
writer ends it) is invalid json all the same.
"""
import hashlib
import json
import os
import os.path as osp
import threading
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch
from mmengine.structures import InstanceData

from mmcast.utils import atomic_open
from mmcast.utils.work_dir_checkpoint import resolve_checkpoint
from .filtering import check_filter_cfg

HEADER_KEY = 'mmcast_pseudo_labels'
IDENTITY_KEYS = ('teacher', 'checkpoint_sha256', 'unlabeled_sha256', 'filter')
SKIPPED_IMAGE_KEY = 'mmcast_skipped'
# How write_pseudo_label_json ends a file (the annotation list, the object).
_FILE_END = b']}'

_HASH_CACHE: Dict[str, dict] = {}
_HASH_LOCK = threading.Lock()


# --------------------------------------------------------------------------
# hashing
# --------------------------------------------------------------------------
def _cache_file() -> str:
    root = os.environ.get('MMCAST_CACHE_DIR') or osp.join(
        osp.expanduser('~'), '.cache', 'mmcast')
    return osp.join(root, 'sha256_cache.json')


def _read_disk_cache() -> dict:
    try:
        with open(_cache_file(), encoding='utf-8') as f:
            cache = json.load(f)
        return cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_disk_cache(key: str, entry: dict) -> None:
    try:
        cache = _read_disk_cache()
        cache[key] = entry
        if len(cache) > 1000:  # keep it small: drop the oldest entries
            cache = dict(list(cache.items())[-1000:])
        with atomic_open(_cache_file(), 'w', encoding='utf-8') as f:
            json.dump(cache, f)
    except OSError:
        pass  # the cache is an optimisation only


def file_sha256(path: str, use_cache: bool = True) -> str:
    """Hex sha256 of a file's bytes.

    Results are cached (in memory and in ``$MMCAST_CACHE_DIR/sha256_cache
    .json``, default ``~/.cache/mmcast``) by absolute path, mtime and size, so
    a multi-GB checkpoint is hashed once, not at every run.

    Raises:
        FileNotFoundError: naming ``path`` if it is not a file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'file not found: {path}')
    key = osp.realpath(path)
    st = os.stat(key)
    stamp = dict(mtime_ns=st.st_mtime_ns, size=st.st_size)
    if use_cache:
        with _HASH_LOCK:
            entry = _HASH_CACHE.get(key)
        if entry is None:
            entry = _read_disk_cache().get(key)
        if isinstance(entry, dict) and entry.get('mtime_ns') == \
                stamp['mtime_ns'] and entry.get('size') == stamp['size'] \
                and isinstance(entry.get('sha256'), str):
            with _HASH_LOCK:
                _HASH_CACHE[key] = entry
            return entry['sha256']
    h = hashlib.sha256()
    with open(key, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 22), b''):
            h.update(chunk)
    digest = h.hexdigest()
    if use_cache:
        entry = dict(stamp, sha256=digest)
        with _HASH_LOCK:
            _HASH_CACHE[key] = entry
        _write_disk_cache(key, entry)
    return digest


def state_dict_sha256(module: torch.nn.Module) -> str:
    """Hex sha256 of a module's state dict (names, dtypes, shapes, values).

    Identifies in-memory weights (e.g. ``runner.model.teacher``) that come
    from no single checkpoint file.
    """
    h = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        h.update(name.encode())
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f'{t.dtype}{tuple(t.shape)}'.encode())
            if t.dtype == torch.bfloat16:
                t = t.view(torch.int16)
            h.update(t.numpy().tobytes())
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


def checkpoint_sha256(checkpoint: str) -> str:
    """sha256 of a local checkpoint file (for ``work-dir://<dir>``: of the
    checkpoint it stands for); of the name for a URL."""
    checkpoint = resolve_checkpoint(checkpoint)
    if '://' in checkpoint and not osp.exists(checkpoint):
        return 'url:' + hashlib.sha256(checkpoint.encode()).hexdigest()
    return file_sha256(checkpoint)


def make_header(teacher: str,
                checkpoint: Optional[str],
                unlabeled_ann_file: str,
                filter_cfg: Optional[dict],
                checkpoint_hash: Optional[str] = None) -> dict:
    """The identity part of a pseudo-label header.

    Args:
        teacher (str): The teacher's config path, or a name.
        checkpoint (str, optional): The teacher checkpoint path (or URL).
        unlabeled_ann_file (str): The unlabeled set's COCO json.
        filter_cfg (dict, optional): :class:`PseudoLabelFilter` arguments
            (completed with the defaults).
        checkpoint_hash (str, optional): Use this instead of hashing
            ``checkpoint`` (e.g. :func:`state_dict_sha256` of a live model).

    Returns:
        dict: ``teacher``, ``checkpoint``, ``checkpoint_sha256``,
        ``unlabeled_ann_file``, ``unlabeled_sha256`` and ``filter``.
    """
    if checkpoint_hash is None:
        if checkpoint is None:
            raise ValueError('give a checkpoint or a checkpoint_hash')
        checkpoint_hash = checkpoint_sha256(checkpoint)
    return dict(
        teacher=str(teacher),
        checkpoint=None if checkpoint is None else str(checkpoint),
        checkpoint_sha256=checkpoint_hash,
        unlabeled_ann_file=str(unlabeled_ann_file),
        unlabeled_sha256=file_sha256(unlabeled_ann_file),
        filter=check_filter_cfg(filter_cfg))


def identity(header: dict) -> dict:
    """The fields of ``header`` that decide whether labels are current."""
    return {k: header.get(k) for k in IDENTITY_KEYS}


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------
def read_info(path: str, max_bytes: int = 1 << 26) -> Optional[dict]:
    """The ``info`` field of a COCO json, or ``None`` if it has none.

    Files written by :func:`write_pseudo_label_json` start with ``info``, so
    only the first bytes (and the last two, to tell a file cut short) are
    parsed; other files are loaded whole.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not valid json.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'pseudo-label file not found: {path}')
    prefix = '{"info":'
    decoder = json.JSONDecoder()
    with open(path, 'rb') as f:
        f.seek(max(os.fstat(f.fileno()).st_size - len(_FILE_END), 0))
        complete = f.read() == _FILE_END
    with open(path, encoding='utf-8') as f:
        buf = f.read(1 << 16)
        if complete and buf.startswith(prefix):
            while True:
                try:
                    info, _ = decoder.raw_decode(buf, len(prefix))
                    return info if isinstance(info, dict) else None
                except json.JSONDecodeError:
                    more = f.read(1 << 20)
                    if not more or len(buf) > max_bytes:
                        break
                    buf += more
    try:
        with open(path, encoding='utf-8') as f:
            coco = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{path} is not valid json: {e}') from e
    info = coco.get('info') if isinstance(coco, dict) else None
    return info if isinstance(info, dict) else None


def read_header(path: str) -> Optional[dict]:
    """The mmcast pseudo-label header of ``path`` (``None`` if absent)."""
    info = read_info(path)
    if info is None:
        return None
    header = info.get(HEADER_KEY)
    return header if isinstance(header, dict) else None


def stale_reason(out_file: str, expected_header: dict) -> Optional[str]:
    """Why ``out_file`` is not the pseudo-labels ``expected_header`` asks for.

    Args:
        out_file (str): The pseudo-label json.
        expected_header (dict): :func:`make_header`'s result (its
            ``checkpoint`` and ``unlabeled_ann_file`` name the files in the
            message).

    Returns:
        str | None: ``None`` when current, else one sentence naming the
        case: missing, invalid json (e.g. truncated), no mmcast header,
        another unlabeled set, another teacher checkpoint, another teacher,
        another filter.
    """
    try:
        header = read_header(out_file)
    except FileNotFoundError:
        return f'{out_file} does not exist yet'
    except (OSError, ValueError) as e:
        return f'{out_file} is not valid json (truncated?): {e}'
    if header is None:
        return f'{out_file} has no mmcast pseudo-label header'
    expected = dict(expected_header)
    if header.get('unlabeled_sha256') != expected.get('unlabeled_sha256'):
        return (f'{out_file} was made from another unlabeled set '
                f'({header.get("unlabeled_ann_file")}) than '
                f'{expected.get("unlabeled_ann_file")}, or that file changed')
    if header.get('checkpoint_sha256') != expected.get('checkpoint_sha256'):
        return (f'{out_file} was made with another teacher checkpoint '
                f'({header.get("checkpoint")}) than '
                f'{expected.get("checkpoint")}, or that file changed')
    if header.get('teacher') != expected.get('teacher'):
        return (f'{out_file} was made by another teacher '
                f'({header.get("teacher")}) than {expected.get("teacher")}')
    if not is_current(out_file, identity(expected)):
        return (f'{out_file} was made with another filter '
                f'({header.get("filter")}) than {expected.get("filter")}')
    return None


def is_current(out_file: str, expected_header_subset: dict) -> bool:
    """Whether ``out_file`` holds pseudo-labels made as ``expected`` says.

    Compares every key of ``expected_header_subset`` (normally
    :func:`identity` of :func:`make_header`: teacher, checkpoint hash,
    unlabeled-set hash, filter thresholds) with the file's header. A
    missing, unreadable or header-less file is not current.
    """
    try:
        header = read_header(out_file)
    except (OSError, ValueError):
        return False
    if header is None:
        return False
    expected = dict(expected_header_subset)
    if 'filter' in expected:
        expected['filter'] = check_filter_cfg(expected['filter'])
    for key, value in expected.items():
        got = header.get(key)
        if key == 'filter' and isinstance(got, dict):
            try:
                got = check_filter_cfg(got)
            except ValueError:
                return False
        if got != value:
            return False
    return True


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------
def _to_numpy_masks(masks) -> np.ndarray:
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    elif hasattr(masks, 'to_ndarray'):
        masks = masks.to_ndarray()
    return np.asarray(masks).astype(bool)


def instances_to_coco_annotations(instances: InstanceData,
                                  image_id,
                                  cat_ids: Sequence[int],
                                  start_id: int = 1,
                                  score_decimals: int = 5) -> List[dict]:
    """COCO annotation dicts for one image's (filtered) instances.

    Args:
        instances (InstanceData): ``masks`` (n, H, W) bool, ``labels`` (n,)
            in the dataset's class order, ``scores`` (n,).
        image_id: The COCO image id.
        cat_ids (Sequence[int]): COCO category id of each class index
            (``CocoDataset.cat_ids``).
        start_id (int): Id of the first annotation; the others follow.
        score_decimals (int): Scores are rounded to keep the file small.

    Returns:
        list[dict]: ``id``, ``image_id``, ``category_id``, ``segmentation``
        (RLE, ``counts`` a str), ``area``, ``bbox`` (xywh), ``iscrowd`` 0 and
        ``score``; masks with no pixel are left out.
    """
    masks = _to_numpy_masks(instances.masks)
    labels = [int(x) for x in np.asarray(
        instances.labels.cpu() if isinstance(instances.labels, torch.Tensor)
        else instances.labels).reshape(-1)]
    scores = [float(x) for x in np.asarray(
        instances.scores.cpu() if isinstance(instances.scores, torch.Tensor)
        else instances.scores).reshape(-1)]
    if len(masks) == 0:
        return []
    rles = mask_util.encode(
        np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    areas = mask_util.area(rles)
    boxes = mask_util.toBbox(rles)
    anns = []
    for rle, area, box, label, score in zip(rles, areas, boxes, labels,
                                            scores):
        if area <= 0:
            continue
        if not 0 <= label < len(cat_ids):
            raise ValueError(f'label {label} of image {image_id} is out of '
                             f'range for {len(cat_ids)} classes')
        counts = rle['counts']
        anns.append(
            dict(
                id=start_id + len(anns),
                image_id=image_id,
                category_id=int(cat_ids[label]),
                segmentation=dict(
                    size=[int(s) for s in rle['size']],
                    counts=counts.decode('ascii')
                    if isinstance(counts, bytes) else counts),
                area=int(area),
                bbox=[float(v) for v in box],
                iscrowd=0,
                score=round(score, score_decimals)))
    return anns


def write_pseudo_label_json(out_file: str, header: dict,
                            images: Iterable[dict],
                            categories: Sequence[dict],
                            annotations: Iterable[dict]) -> None:
    """Write a complete COCO json atomically, ``info`` first.

    Args:
        out_file (str): Destination.
        header (dict): Stored as ``info['mmcast_pseudo_labels']``.
        images (Iterable[dict]): COCO image entries (skipped images may carry
            ``mmcast_skipped: true``).
        categories (Sequence[dict]): COCO categories.
        annotations (Iterable[dict]): COCO annotations with unique ids.
    """
    coco = {
        'info': {
            'description': 'mmcast pseudo-labels',
            HEADER_KEY: header
        },
        'licenses': [],
        'categories': list(categories),
        'images': list(images),
        'annotations': list(annotations),
    }
    with atomic_open(out_file, 'w', encoding='utf-8') as f:
        json.dump(coco, f, separators=(',', ':'))
