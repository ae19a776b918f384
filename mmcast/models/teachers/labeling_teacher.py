# Copyright (c) mmcast contributors. All rights reserved.
"""The teacher that makes the offline pseudo-labels, built when needed.

It is either the teacher–student wrapper's own ``.teacher`` (already in
memory) or a frozen teacher built from a config and a checkpoint on the
training model's device, at most once and only when something has to be
labeled: a stage whose pseudo-labels are current never builds it.
"""
from typing import Callable, Optional

import torch
from torch import nn

from .frozen_teacher import build_frozen_teacher


def wrapper_teacher(model: nn.Module) -> nn.Module:
    """The ``.teacher`` of the (unwrapped) training ``model``.

    Raises:
        ValueError: ``model`` has no teacher.
    """
    teacher = getattr(model, 'teacher', None)
    if teacher is None:
        raise ValueError(
            'PseudoLabelHook: give teacher_config and teacher_checkpoint, '
            f'or train a model with a .teacher ({type(model).__name__} '
            'has none)')
    return teacher


def build_labeling_teacher(config: str, checkpoint: str, model: nn.Module,
                           dataset_meta: dict) -> nn.Module:
    """A frozen teacher from ``config`` and ``checkpoint`` on the device of
    the training ``model`` (CPU when it has no parameters), with
    ``dataset_meta`` when its checkpoint has none."""
    teacher = build_frozen_teacher(config, checkpoint)
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device('cpu')
    teacher.to(device)
    if getattr(teacher, 'dataset_meta', None) is None:
        teacher.dataset_meta = dataset_meta
    return teacher


class LabelingTeacher:
    """The teacher that labels: ``live`` or, without it, ``build()``'s.

    Args:
        live (nn.Module, optional): The wrapper's teacher.
        build (callable, optional): Makes the teacher when there is no
            ``live`` one; called on the first :meth:`get` only.
    """

    def __init__(self,
                 live: Optional[nn.Module] = None,
                 build: Optional[Callable[[], nn.Module]] = None) -> None:
        if (live is None) == (build is None):
            raise ValueError('LabelingTeacher needs either live or build')
        self.live = live
        self._build = build
        self._built: Optional[nn.Module] = None

    def get(self) -> nn.Module:
        """The teacher (built now if it has to be)."""
        if self.live is not None:
            return self.live
        if self._built is None:
            self._built = self._build()
        return self._built

    def release(self) -> None:
        """Drop the references to the teacher, so that its memory can be
        freed once the labels are on disk; :meth:`get` no longer works."""
        self.live = self._build = self._built = None
