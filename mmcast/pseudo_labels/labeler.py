# Copyright (c) mmcast contributors. All rights reserved.
"""Offline pseudo-labeling of the unlabeled set by a frozen teacher.

:func:`label_unlabeled_set` runs batched teacher inference over the
unlabeled COCO json with a test pipeline, filters each image's predictions
(:class:`PseudoLabelFilter`) and writes a COCO json (see
:mod:`mmcast.pseudo_labels.coco_pseudo_labels`).

- **Distributed**: rank ``r`` of ``W`` takes images ``r, r+W, r+2W, ...``
  (no duplicate, no gap); every rank appends to its own shard; after a
  barrier rank 0 merges the shards into the final file (atomic write) while
  the others wait at a second barrier.
- **Resumable**: shard ``<out_file>.partial.rank<r>.jsonl`` starts with a
  line holding the labeling identity (teacher, checkpoint hash, unlabeled
  hash, filter) and gets one json line per finished image, flushed and
  fsync'ed per batch. A restarted run reads every shard of the same
  identity (any rank, so a changed world size is fine), ignores a truncated
  last line, skips the finished images and continues. Shards of another
  identity are discarded. The merged file replaces the shards.
- **Overlapped**: the filter runs where the teacher's predictions are
  (its thresholds, painting and ``min_area`` on the device), so that only
  the kept masks reach the host, as bool; RLE encoding and the shard
  writes run on one background thread (:class:`ShardWriter`) while the
  teacher labels the next batch, a bounded number of batches behind, in
  order, one write per batch.
- **Robust**: an image that cannot be read or decoded is skipped with a
  warning naming the file; it is counted in the header (``num_skipped``,
  ``skipped``) and kept in ``images`` with ``mmcast_skipped: true`` (so the
  image list, hence the dataset length, never changes; PseudoLabeledDataset
  never serves it). An image with zero surviving instances is kept, with
  no annotation.
- **Never a success on nothing**: when more than ``max_unreadable`` (a
  fraction, 5 % by default) of the images are missing (checked before the
  teacher runs) or fail to load (checked before the merge),
  :class:`UnreadableImagesError` names the image folder and the first such
  file, and no output file is written.
"""
import json
import logging
import os
import os.path as osp
import time
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.dist import (barrier, broadcast_object_list, get_dist_info,
                           is_distributed)
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from mmengine.utils import ProgressBar
from torch.utils.data import DataLoader, Dataset

from .coco_pseudo_labels import instances_to_coco_annotations
from .filtering import PseudoLabelFilter, build_filter
from .label_shards import (OVER_CAP_KEY, SHARD_KEY, json_image_id,
                           merge_pseudo_label_shards, read_all_shards,
                           read_shard, shard_path)
from .labeling_dataset import (DEFAULT_MAX_UNREADABLE, SafeLoadDataset,
                               build_labeling_dataset, category_ids,
                               check_images_exist, collate_labeling_batch,
                               image_table)
from .staleness import identity
from .shard_writer import ShardWriter


def _check_shape(pred, data_sample, path) -> None:
    ori = data_sample.metainfo.get('ori_shape')
    masks = pred.masks
    if ori is not None and len(masks) and tuple(masks.shape[-2:]) != \
            tuple(ori[:2]):
        raise ValueError(
            f'teacher masks of {path} are {tuple(masks.shape[-2:])}, the '
            f'original image is {tuple(ori[:2])}: the teacher must predict '
            'at the original resolution (predict(..., rescale=True))')


def _to_host(kept: InstanceData) -> InstanceData:
    """The filter's kept instances on the host: ``masks`` bool (n, H, W),
    ``labels`` (n, ), ``scores`` (n, ). The labeler's only copy of
    predictions to the host."""
    return InstanceData(
        masks=kept.masks.to('cpu', torch.bool),
        labels=kept.labels.cpu(),
        scores=kept.scores.cpu())


def _encode_lines(records: List[Union[dict, Tuple[object, InstanceData,
                                                  int]]],
                  cat_ids: Sequence[int]) -> str:
    """The shard text of one batch. ``records``: per image, its finished
    line (a skipped image) or its id, kept instances on the host and the
    instances a cap left out (written when there are any)."""
    lines = []
    for rec in records:
        if isinstance(rec, dict):
            lines.append(rec)
            continue
        line = dict(image_id=rec[0],
                    annotations=instances_to_coco_annotations(
                        rec[1], rec[0], cat_ids))
        if rec[2]:
            line[OVER_CAP_KEY] = rec[2]
        lines.append(line)
    return ''.join(json.dumps(x) + '\n' for x in lines)


@torch.no_grad()
def label_unlabeled_set(model: torch.nn.Module,
                        dataset: Union[dict, Dataset],
                        out_file: str,
                        filter_cfg: Union[None, dict,
                                          PseudoLabelFilter] = None,
                        header: Optional[dict] = None,
                        batch_size: int = 2,
                        num_workers: int = 0,
                        rank: Optional[int] = None,
                        world_size: Optional[int] = None,
                        log_interval: int = 50,
                        progress: bool = True,
                        max_unreadable: Optional[float] = (
                            DEFAULT_MAX_UNREADABLE)) -> dict:
    """Pseudo-label the unlabeled set with ``model``; write ``out_file``.

    Args:
        model (nn.Module): The teacher: an MMDet detector whose
            ``test_step(data)`` returns ``DetDataSample`` s with
            ``pred_instances`` (``masks`` at the original resolution,
            ``labels`` in the dataset's class order, ``scores``). Put in
            eval mode for the call (its mode is restored afterwards). A
            teacher that can skip the detections the filter drops comes
            with that already set by the caller (see
            :meth:`~mmcast.models.teachers.labeling_teacher.LabelingTeacher.labeling`).
        dataset (dict | Dataset): The unlabeled set with a test pipeline
            (LoadImageFromFile, Resize, PackDetInputs with img_id, img_path,
            ori_shape, img_shape, scale_factor), as a config or built.
        out_file (str): The COCO json to write.
        filter_cfg (dict | PseudoLabelFilter, optional): Filter arguments.
        header (dict, optional): Identity (see :func:`make_header`); its
            ``filter`` is set from ``filter_cfg``. Shards of another
            identity are discarded.
        batch_size (int): Images per teacher forward. Defaults to 2.
        num_workers (int): DataLoader workers. Defaults to 0.
        rank (int, optional): This process' rank; defaults to
            ``mmengine.dist.get_dist_info()``.
        world_size (int, optional): Number of ranks (same default).
            Injecting ``rank``/``world_size`` without an initialised process
            group labels only that rank's share; the process that completes
            the last share merges (or call :func:`merge_pseudo_label_shards`).
        log_interval (int): Log the progress every this many batches.
        progress (bool): Show a progress bar on rank 0.
        max_unreadable (float, optional): The fraction of images that may
            be missing or fail to load (skipped and counted); above it
            :class:`UnreadableImagesError` is raised and nothing is
            written. Missing files are counted before the teacher runs.
            ``None`` allows any number. Defaults to 0.05.

    Returns:
        dict: ``out_file``, ``merged`` (whether the final file was written
        by this call), ``num_processed`` (images labeled by this call,
        skipped ones included), ``num_resumed`` (images of this rank's share
        found finished in the shards), ``num_skipped`` (by this call),
        ``images_per_s`` and ``header`` (the header written, or ``None``).
    """
    dist_rank, dist_world = get_dist_info()
    rank = dist_rank if rank is None else int(rank)
    world_size = dist_world if world_size is None else int(world_size)
    if not 0 <= rank < world_size:
        raise ValueError(f'rank must be in [0, {world_size}), got {rank}')
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    collective = is_distributed() and world_size > 1 and \
        (rank, world_size) == (dist_rank, dist_world)

    filt = build_filter(filter_cfg)
    header = dict(header or {})
    if header.get('filter') not in (None, filt.cfg):
        raise ValueError(f'header filter {header["filter"]} differs from the '
                         f'filter used {filt.cfg}')
    header['filter'] = filt.cfg
    header.setdefault('teacher', type(model).__name__)
    ident = identity(header)

    dataset = build_labeling_dataset(dataset)
    img_ids, paths = image_table(dataset)
    cat_ids = category_ids(dataset)
    num_images = len(img_ids)
    check_images_exist(dataset, max_unreadable)

    # ---- resume: own shard (repaired) + finished images of every shard
    my_shard = shard_path(out_file, rank)
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    if osp.exists(my_shard) and read_shard(my_shard, ident,
                                            repair=True) is None:
        print_log(
            f'discarding {my_shard}: made with another teacher, checkpoint, '
            'unlabeled set or filter', logger='current',
            level=logging.WARNING)
        os.remove(my_shard)
    done = read_all_shards(out_file, ident)
    share = list(range(rank, num_images, world_size))
    todo = [i for i in share if json_image_id(img_ids[i]) not in done]
    num_resumed = len(share) - len(todo)
    if num_resumed:
        print_log(
            f'rank {rank}: resuming, {num_resumed} of {len(share)} images '
            'already pseudo-labeled', logger='current')
    if collective:
        barrier()  # everyone has read the shards before anyone appends

    was_training = model.training
    model.eval()
    loader = DataLoader(
        SafeLoadDataset(dataset, todo),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_labeling_batch,
        persistent_workers=False)
    bar = ProgressBar(len(todo)) if progress and rank == 0 and todo \
        else None
    num_skipped = 0
    written = dict(images=0, batches=0)
    start = time.perf_counter()

    def on_written(num_lines: int) -> None:
        written['images'] += num_lines
        written['batches'] += 1
        if bar is not None:
            for _ in range(num_lines):
                bar.update()
        if log_interval and written['batches'] % log_interval == 0:
            rate = written['images'] / max(time.perf_counter() - start, 1e-9)
            print_log(
                f'pseudo-labeling rank {rank}: {written["images"]}/'
                f'{len(todo)} images, {rate:.2f} img/s', logger='current')

    try:
        new_file = not osp.exists(my_shard) or osp.getsize(my_shard) == 0
        with open(my_shard, 'a', encoding='utf-8') as shard:
            if new_file:
                shard.write(json.dumps({SHARD_KEY: ident}) + '\n')
                shard.flush()
                os.fsync(shard.fileno())
            writer = ShardWriter(shard, on_written)
            try:
                for batch in loader:
                    records = []
                    for idx, error in batch['failed']:
                        print_log(
                            f'pseudo-labeling: skipping unreadable image '
                            f'{paths[idx]} (id {img_ids[idx]}): {error}',
                            logger='current', level=logging.WARNING)
                        records.append(dict(
                            image_id=img_ids[idx], skipped=True,
                            file=paths[idx], error=error))
                        num_skipped += 1
                    if batch['data'] is not None:
                        outputs = model.test_step(batch['data'])
                        if len(outputs) != len(batch['indices']):
                            raise RuntimeError(
                                f'the teacher returned {len(outputs)} '
                                f'results for {len(batch["indices"])} images')
                        for idx, sample in zip(batch['indices'], outputs):
                            pred = sample.pred_instances
                            _check_shape(pred, sample, paths[idx])
                            kept = filt(pred)
                            records.append(
                                (img_ids[idx], _to_host(kept),
                                 kept.metainfo.get('num_over_cap', 0)))
                    writer.submit(_encode_lines, len(records), records,
                                  cat_ids)
                writer.drain()
            finally:
                writer.close()
    finally:
        model.train(was_training)
        if bar is not None:
            bar.file.write('\n')
            bar.file.flush()
    num_processed = written['images']
    elapsed = time.perf_counter() - start
    rate = num_processed / elapsed if elapsed > 0 else 0.0
    print_log(
        f'pseudo-labeling rank {rank}: {num_processed} images in '
        f'{elapsed:.1f} s ({rate:.2f} img/s), {num_skipped} skipped',
        logger='current')

    # ---- merge
    out_header, merged = None, False
    if collective:
        barrier()
        status = [None]
        if rank == 0:
            try:
                out_header = merge_pseudo_label_shards(
                    out_file, dataset, header, max_unreadable)
                status = [out_header]
            except Exception as e:  # tell the others, then raise
                status = [f'{type(e).__name__}: {e}']
                broadcast_object_list(status, src=0)
                raise
        broadcast_object_list(status, src=0)
        if not isinstance(status[0], dict):
            raise RuntimeError(f'rank 0 failed to merge {out_file}: '
                               f'{status[0]}')
        out_header, merged = status[0], rank == 0
    else:
        finished = read_all_shards(out_file, ident)
        if all(json_image_id(i) in finished for i in img_ids):
            out_header = merge_pseudo_label_shards(out_file, dataset, header,
                                                   max_unreadable)
            merged = True
    return dict(
        out_file=out_file,
        merged=merged,
        num_processed=num_processed,
        num_resumed=num_resumed,
        num_skipped=num_skipped,
        images_per_s=rate,
        header=out_header)
