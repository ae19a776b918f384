# Copyright (c) mmcast contributors. All rights reserved.
"""Are the offline pseudo-labels on disk current?

A pseudo-label file is current when the identity fields of its header
(:data:`~mmcast.pseudo_labels.coco_pseudo_labels.IDENTITY_KEYS`: the
teacher, the sha256 of its weights, of its resolved settings (its model
config, ``test_cfg`` included) and of the unlabeled json, the filter)
are those the stage asks for, so that a stage relabels only when one of
them changed, and :func:`stale_reason` says which. Two more things can
fall behind: the quality measure beside the file (``<stem>.quality.json``)
and a ``PseudoLabeledDataset`` that loaded the file before it was
rewritten. This module says what each must be.
"""
import hashlib
import json
import os.path as osp
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from mmcast.utils.file_hashing import file_sha256
from mmcast.utils.work_dir_checkpoint import resolve_checkpoint
from .coco_pseudo_labels import IDENTITY_KEYS, read_header
from .filtering import check_filter_cfg


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
                checkpoint_hash: Optional[str] = None,
                teacher_settings: Optional[str] = None) -> dict:
    """The identity part of a pseudo-label header.

    Args:
        teacher (str): The teacher's config path, or a name.
        checkpoint (str, optional): The teacher checkpoint path (or URL).
        unlabeled_ann_file (str): The unlabeled set's COCO json.
        filter_cfg (dict, optional): :class:`PseudoLabelFilter` arguments
            (completed with the defaults).
        checkpoint_hash (str, optional): Use this instead of hashing
            ``checkpoint`` (e.g. :func:`state_dict_sha256` of a live model).
        teacher_settings (str, optional): The sha256 of the teacher's
            resolved settings (``LabelingTeacher.settings``).

    Returns:
        dict: ``teacher``, ``checkpoint``, ``checkpoint_sha256``,
        ``teacher_settings``, ``unlabeled_ann_file``, ``unlabeled_sha256``
        and ``filter``.
    """
    if checkpoint_hash is None:
        if checkpoint is None:
            raise ValueError('give a checkpoint or a checkpoint_hash')
        checkpoint_hash = checkpoint_sha256(checkpoint)
    return dict(
        teacher=str(teacher),
        checkpoint=None if checkpoint is None else str(checkpoint),
        checkpoint_sha256=checkpoint_hash,
        teacher_settings=teacher_settings,
        unlabeled_ann_file=str(unlabeled_ann_file),
        unlabeled_sha256=file_sha256(unlabeled_ann_file),
        filter=check_filter_cfg(filter_cfg))


def identity(header: dict) -> dict:
    """The fields of ``header`` that decide whether labels are current."""
    return {k: header.get(k) for k in IDENTITY_KEYS}


def labeling_header(unlabeled_ann_file: str,
                    filter_cfg: dict,
                    live_teacher: Optional[nn.Module] = None,
                    teacher_config: Optional[str] = None,
                    teacher_checkpoint: Optional[str] = None,
                    teacher_settings: Optional[str] = None) -> dict:
    """The header the pseudo-labels of ``unlabeled_ann_file`` must have.

    The teacher is ``live_teacher`` (the teacher–student wrapper's
    ``.teacher``, identified by its class, its state dict and its
    ``labeling_identity`` if it has one) when given, else
    ``teacher_config`` with ``teacher_checkpoint`` (identified by the
    checkpoint's sha256), which is what ``tools/pseudo_label.py`` writes for
    the same config path, checkpoint and filter.

    Args:
        unlabeled_ann_file (str): The unlabeled json that is labeled.
        filter_cfg (dict): The pseudo-label filter's arguments.
        live_teacher (nn.Module, optional): The wrapper's teacher.
        teacher_config (str, optional): The teacher's config file.
        teacher_checkpoint (str, optional): The teacher's checkpoint.
        teacher_settings (str, optional): The sha256 of its resolved
            settings (another ``test_cfg`` labels anew).

    Returns:
        dict: :func:`~mmcast.pseudo_labels.make_header`'s result.
    """
    if live_teacher is not None:
        # a teacher's settings that its state dict does not hold (e.g. an
        # ensemble's fusion)
        extra = getattr(live_teacher, 'labeling_identity', None)
        return make_header(
            teacher=f'runner.model.teacher ({type(live_teacher).__name__}'
            + (f', {extra})' if extra else ')'),
            checkpoint=None,
            unlabeled_ann_file=unlabeled_ann_file,
            filter_cfg=filter_cfg,
            checkpoint_hash='state_dict:' + state_dict_sha256(live_teacher),
            teacher_settings=teacher_settings)
    return make_header(
        teacher=teacher_config,
        checkpoint=teacher_checkpoint,
        unlabeled_ann_file=unlabeled_ann_file,
        filter_cfg=filter_cfg,
        checkpoint_hash=checkpoint_sha256(teacher_checkpoint),
        teacher_settings=teacher_settings)


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
        other teacher settings, another filter.
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
    if header.get('teacher_settings') != expected.get('teacher_settings'):
        return (f'{out_file} was made with other settings of the teacher '
                f'{expected.get("teacher")} (its resolved model config, '
                'test_cfg included)')
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
