# Copyright (c) mmcast contributors. All rights reserved.
"""Are the offline pseudo-labels on disk current?

Three things can fall behind the teacher, checkpoint, unlabeled set and
filter of a stage: the pseudo-label json (its header, see
:func:`~mmcast.pseudo_labels.stale_reason`), the quality measure beside it
(``<stem>.quality.json``) and a ``PseudoLabeledDataset`` that loaded the
json before it was rewritten. This module says what each must be.
"""
import json
from typing import Optional, Sequence, Tuple

from torch import nn

from .coco_pseudo_labels import (checkpoint_sha256, identity, make_header,
                                 read_header, state_dict_sha256)


def labeling_header(unlabeled_ann_file: str,
                    filter_cfg: dict,
                    live_teacher: Optional[nn.Module] = None,
                    teacher_config: Optional[str] = None,
                    teacher_checkpoint: Optional[str] = None) -> dict:
    """The header the pseudo-labels of ``unlabeled_ann_file`` must have.

    The teacher is ``live_teacher`` (the teacher–student wrapper's
    ``.teacher``, identified by its class and state dict) when given, else
    ``teacher_config`` with ``teacher_checkpoint`` (identified by the
    checkpoint's sha256), which is what ``tools/pseudo_label.py`` writes for
    the same config path, checkpoint and filter.

    Args:
        unlabeled_ann_file (str): The unlabeled json that is labeled.
        filter_cfg (dict): The pseudo-label filter's arguments.
        live_teacher (nn.Module, optional): The wrapper's teacher.
        teacher_config (str, optional): The teacher's config file.
        teacher_checkpoint (str, optional): The teacher's checkpoint.

    Returns:
        dict: :func:`~mmcast.pseudo_labels.make_header`'s result.
    """
    if live_teacher is not None:
        return make_header(
            teacher=f'runner.model.teacher ({type(live_teacher).__name__})',
            checkpoint=None,
            unlabeled_ann_file=unlabeled_ann_file,
            filter_cfg=filter_cfg,
            checkpoint_hash='state_dict:' + state_dict_sha256(live_teacher))
    return make_header(
        teacher=teacher_config,
        checkpoint=teacher_checkpoint,
        unlabeled_ann_file=unlabeled_ann_file,
        filter_cfg=filter_cfg,
        checkpoint_hash=checkpoint_sha256(teacher_checkpoint))


def quality_files(out_file: str) -> Tuple[str, str]:
    """``(<stem>.labeled_split.json, <stem>.quality.json)`` of the
    pseudo-label file ``out_file``: the labels of the quality set and their
    measure."""
    stem = out_file[:-5] if out_file.endswith('.json') else out_file
    return stem + '.labeled_split.json', stem + '.quality.json'


def quality_is_stale(out_file: str, header: dict,
                     score_thrs: Sequence[float]) -> bool:
    """Whether the quality beside ``out_file`` is not that of the teacher
    and filter of ``header`` at the thresholds ``score_thrs`` (ascending):
    missing, unreadable, of another identity or another sweep."""
    try:
        with open(quality_files(out_file)[1], encoding='utf-8') as f:
            quality = json.load(f)
        return quality.get('identity') != identity(header) or [
            r['score_thr'] for r in quality['sweep']
        ] != list(score_thrs)
    except (OSError, ValueError, KeyError, TypeError):
        return True


def loaded_file_is_current(dataset) -> bool:
    """Whether the pseudo-label header a ``PseudoLabeledDataset`` loaded is
    the one in its ``ann_file`` now."""
    try:
        return read_header(dataset.ann_file) == dataset.pseudo_label_header
    except (OSError, ValueError):
        return False
