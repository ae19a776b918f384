# Copyright (c) mmcast contributors. All rights reserved.
"""The labeller's per-rank shards (``<out_file>.partial.rank<r>.jsonl``):
their paths, reading them back for a resumed run, and merging them into the
final COCO json."""
import copy
import glob
import json
import os
import os.path as osp
from typing import Dict, List, Optional

from mmengine.logging import print_log

from .coco_pseudo_labels import SKIPPED_IMAGE_KEY, write_pseudo_label_json
from .labeling_dataset import (UnreadableImagesError, build_labeling_dataset,
                               category_ids, check_unreadable, image_source,
                               image_table, load_unlabeled_json)
from .staleness import identity

SHARD_KEY = 'mmcast_pseudo_label_shard'
# an image's record: the instances above the score threshold that a cap (the
# teacher's max_per_image or the filter's) left out, when there are any
OVER_CAP_KEY = 'num_over_cap'


def shard_path(out_file: str, rank: int) -> str:
    """The resumable partial file of ``rank``."""
    return f'{out_file}.partial.rank{rank}.jsonl'


def _all_shards(out_file: str) -> List[str]:
    pattern = glob.escape(out_file) + '.partial.rank*.jsonl'
    return sorted(glob.glob(pattern))


def read_shard(path: str, ident: dict,
                repair: bool = False) -> Optional[Dict[object, dict]]:
    """Records ``{image_id: record}`` of a shard; ``None`` if foreign.

    A line that does not parse (a run killed mid-write) ends the shard;
    with ``repair`` the file is truncated to the valid prefix so that new
    lines can be appended.
    """
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError:
        return {}
    records: Dict[object, dict] = {}
    pos, valid_end, first = 0, 0, True
    while True:
        nl = raw.find(b'\n', pos)
        if nl < 0:
            break
        try:
            obj = json.loads(raw[pos:nl].decode('utf-8'))
        except (ValueError, UnicodeDecodeError):
            break
        if first:
            if not isinstance(obj, dict) or obj.get(SHARD_KEY) != ident:
                return None
            first = False
        elif isinstance(obj, dict) and 'image_id' in obj:
            records.setdefault(obj['image_id'], obj)
        pos = valid_end = nl + 1
    if first:  # not even a complete identity line
        return None if raw.strip() else {}
    if repair and valid_end < len(raw):
        os.truncate(path, valid_end)
    return records


def read_all_shards(out_file: str, ident: dict) -> Dict[object, dict]:
    records: Dict[object, dict] = {}
    for path in _all_shards(out_file):
        got = read_shard(path, ident)
        for img_id, rec in (got or {}).items():
            records.setdefault(img_id, rec)
    return records


def _remove_shards(out_file: str) -> None:
    for path in _all_shards(out_file):
        try:
            os.remove(path)
        except OSError:
            pass


def json_image_id(img_id):
    """An image id as it comes back from json (tuples become lists)."""
    return json.loads(json.dumps(img_id))


def merge_pseudo_label_shards(out_file: str, dataset, header: dict,
                              max_unreadable: Optional[float] = None) -> dict:
    """Merge every shard of ``header``'s identity into ``out_file``.

    Args:
        out_file (str): The final COCO json.
        dataset: The (built) labeling dataset, for the image list and the
            category mapping.
        header (dict): Identity header (:func:`make_header` +
            ``filter``); counts are added.
        max_unreadable (float, optional): The fraction of skipped
            (unreadable) images allowed; ``None`` allows any number.

    Returns:
        dict: The header written.

    Raises:
        RuntimeError: if some image of the dataset is in no shard.
        UnreadableImagesError: if more than ``max_unreadable`` of the images
            were skipped; the shards are removed (so that the images are
            read again once fixed) and ``out_file`` is not written.
    """
    dataset = build_labeling_dataset(dataset)
    ident = identity(header)
    records = read_all_shards(out_file, ident)
    img_ids, paths = image_table(dataset)
    missing = [i for i in img_ids if json_image_id(i) not in records]
    if missing:
        raise RuntimeError(
            f'cannot merge {out_file}: {len(missing)} of {len(img_ids)} '
            f'images have no pseudo-labels yet (e.g. image id {missing[0]})')
    coco = load_unlabeled_json(dataset)
    if coco is not None:
        by_id = {img['id']: img for img in coco['images']}
        categories = coco.get('categories', [])
    else:
        by_id, categories = {}, []
    if not categories:
        classes = dataset.metainfo.get('classes', ())
        cat_ids = category_ids(dataset)
        categories = [dict(id=c, name=n) for c, n in zip(cat_ids, classes)]

    images, annotations, skipped, over_cap = [], [], [], []
    for img_id, path in zip(img_ids, paths):
        rec = records[json_image_id(img_id)]
        if rec.get(OVER_CAP_KEY):
            over_cap.append(rec[OVER_CAP_KEY])
        entry = copy.deepcopy(by_id.get(img_id))
        if entry is None:
            info = dataset.get_data_info(img_ids.index(img_id))
            entry = dict(
                id=img_id,
                file_name=osp.basename(path or ''),
                height=info.get('height'),
                width=info.get('width'))
        if rec.get('skipped'):
            entry[SKIPPED_IMAGE_KEY] = True
            skipped.append(rec.get('file') or path)
        images.append(entry)
        for ann in rec.get('annotations', []):
            ann = dict(ann, id=len(annotations) + 1, image_id=img_id)
            annotations.append(ann)
    try:
        check_unreadable(skipped, len(images), max_unreadable,
                         *image_source(dataset))
    except UnreadableImagesError:
        _remove_shards(out_file)
        raise

    out_header = dict(header)
    out_header.update(
        num_images=len(images),
        num_skipped=len(skipped),
        skipped=skipped,
        num_instances=len(annotations),
        num_capped_images=len(over_cap),
        num_over_cap=sum(over_cap))
    try:
        from mmcast import __version__
        out_header['mmcast_version'] = __version__
    except ImportError:  # pragma: no cover
        pass
    write_pseudo_label_json(out_file, out_header, images, categories,
                            annotations)
    _remove_shards(out_file)
    print_log(
        f'pseudo-labels written to {out_file}: {len(images)} images, '
        f'{len(annotations)} instances, {len(skipped)} skipped' +
        (f'; {len(over_cap)} images hit a cap of instances per image '
         f'(the teacher\'s or the filter\'s max_per_image), which left out '
         f'{sum(over_cap)} instances above the score threshold'
         if over_cap else ''),
        logger='current')
    return out_header
