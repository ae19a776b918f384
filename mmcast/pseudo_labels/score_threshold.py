# Copyright (c) mmcast contributors. All rights reserved.
"""The filter's score threshold, measured and chosen on ground truth.

The teacher labels a set whose ground truth is known (typically the labeled
split D_l) with the filter at the lowest threshold swept; the precision,
recall and F1 at every threshold are written beside the pseudo-labels
(``<stem>.quality.json``, see :mod:`~mmcast.pseudo_labels.quality`), and
``score_thr='auto'`` takes the threshold of the best F1.
"""
import copy
import json
from typing import List, Optional, Sequence, Tuple

from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from torch import nn

from mmcast.utils.atomic_io import atomic_dump_json
from .coco_pseudo_labels import identity, make_header
from .labeler import build_labeling_dataset, label_unlabeled_set
from .quality import pseudo_label_quality
from .staleness import quality_files

# filter_cfg.score_thr that is chosen from the quality dataset
AUTO = 'auto'


def split_auto_score_thr(filter_cfg: Optional[dict],
                         quality_dataset: Optional[dict],
                         score_thrs: Sequence[float]) -> Tuple[dict, bool]:
    """``filter_cfg`` with a number for ``score_thr='auto'``, and whether it
    was ``'auto'``.

    Until the threshold is chosen, ``'auto'`` stands for the lowest of
    ``score_thrs`` (the one the quality set is labeled with).

    Raises:
        ValueError: ``'auto'`` without a ``quality_dataset``.
    """
    filter_cfg = dict(filter_cfg or {})
    auto = filter_cfg.get('score_thr') == AUTO
    if auto:
        if quality_dataset is None:
            raise ValueError(
                "filter_cfg.score_thr='auto' chooses the threshold on "
                'the ground truth of quality_dataset: give one (e.g. the '
                'labeled split D_l)')
        filter_cfg['score_thr'] = min(score_thrs or (0, ))
    return filter_cfg, auto


def check_quality_args(quality_dataset: Optional[dict],
                       score_thrs: Sequence[float]
                       ) -> Tuple[Optional[dict], List[float]]:
    """A copy of ``quality_dataset`` and ``score_thrs`` in ascending order.

    Raises:
        ValueError: ``quality_dataset`` is not a dataset config with an
            ``ann_file``, or ``score_thrs`` is empty or not in [0, 1).
    """
    if quality_dataset is not None and (
            not isinstance(quality_dataset, dict)
            or 'ann_file' not in quality_dataset):
        raise ValueError('quality_dataset must be a dataset config dict '
                         'with an ann_file (a json with ground truth)')
    if not score_thrs or not all(0 <= t < 1 for t in score_thrs):
        raise ValueError('quality_score_thrs must be scores in [0, 1), '
                         f'got {score_thrs!r}')
    return copy.deepcopy(quality_dataset), sorted(float(t) for t in score_thrs)


def measure_quality(teacher: nn.Module,
                    quality_dataset: dict,
                    out_file: str,
                    header: dict,
                    filter_cfg: dict,
                    score_thrs: List[float],
                    filter_score_thr,
                    **labeling_args) -> None:
    """Label ``quality_dataset`` and compare with its ground truth.

    The labels go to ``<out_file stem>.labeled_split.json`` and, on rank 0,
    the precision, recall, F1 and pseudo-instances per image at each of
    ``score_thrs`` (with ``header``'s identity, to know when to measure
    again) to ``<out_file stem>.quality.json``; the sweep is logged.

    Args:
        teacher (nn.Module): The frozen teacher.
        quality_dataset (dict): A dataset config with ground truth and a
            TEST pipeline.
        out_file (str): The pseudo-label json the measure goes beside.
        header (dict): The header of the pseudo-labels that are measured
            (teacher, checkpoint and its hash).
        filter_cfg (dict): The filter, at the lowest of ``score_thrs``.
        score_thrs (list[float]): The thresholds swept, ascending.
        filter_score_thr (float | str): The threshold in use (or
            ``'auto'``), for the record.
        **labeling_args: ``batch_size``, ``num_workers``, ``log_interval``
            and ``max_unreadable`` of
            :func:`~mmcast.pseudo_labels.label_unlabeled_set`.
    """
    labeled_file, quality_file = quality_files(out_file)
    dataset = build_labeling_dataset(quality_dataset)
    print_log(
        f'PseudoLabelHook: measuring pseudo-label quality on the '
        f'{len(dataset)} images of {dataset.ann_file}', logger='current')
    label_unlabeled_set(
        teacher, dataset, labeled_file, filter_cfg=filter_cfg,
        header=make_header(
            teacher=header['teacher'], checkpoint=header['checkpoint'],
            unlabeled_ann_file=dataset.ann_file, filter_cfg=filter_cfg,
            checkpoint_hash=header['checkpoint_sha256']),
        **labeling_args)
    if get_dist_info()[0] != 0:
        return
    quality = pseudo_label_quality(labeled_file, dataset.ann_file, score_thrs)
    quality.update(
        identity=identity(header), gt_file=dataset.ann_file,
        filter_score_thr=filter_score_thr)
    atomic_dump_json(quality, quality_file, indent=1)
    lines = [f'{r["score_thr"]:.2f}: precision {r["precision"]:.3f} '
             f'recall {r["recall"]:.3f} F1 {r["f1"]:.3f} '
             f'{r["per_image"]:.2f}/image' for r in quality['sweep']]
    print_log(
        'PseudoLabelHook: pseudo-label quality against the ground truth '
        f'of {dataset.ann_file} ({quality["gt_per_image"]:.2f} '
        'instances/image; score_thr in use '
        f'{quality["filter_score_thr"]}, best F1 at '
        f'{quality["best_f1_thr"]}):\n  ' + '\n  '.join(lines),
        logger='current')


def best_f1_score_thr(out_file: str) -> float:
    """The best-F1 threshold of the quality measured beside ``out_file``
    (the lowest on ties), logged with its precision and recall."""
    with open(quality_files(out_file)[1], encoding='utf-8') as f:
        quality = json.load(f)
    chosen = float(quality['best_f1_thr'])
    best = next(r for r in quality['sweep'] if r['score_thr'] == chosen)
    print_log(
        f"PseudoLabelHook: score_thr 'auto' -> {chosen} (best F1 "
        f'{best["f1"]:.3f}: precision {best["precision"]:.3f}, '
        f'recall {best["recall"]:.3f} on {quality["gt_file"]})',
        logger='current')
    return chosen
