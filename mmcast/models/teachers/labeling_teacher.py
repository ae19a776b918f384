# Copyright (c) mmcast contributors. All rights reserved.
"""The teacher that makes the offline pseudo-labels, built when needed.

It is either the teacher–student wrapper's own ``.teacher`` (already in
memory) or a frozen teacher built from a config and a checkpoint, at most
once and only when something has to be labeled: a stage whose
pseudo-labels are current never builds it. With ``test_time_flip`` it
labels every image and its mirror image (:class:`FlipVotingTTA`). The
labeling job (:class:`~mmcast.pseudo_labels.OfflineLabelingJob`) asks it
for its identity (:attr:`live`, :attr:`config`, :attr:`checkpoint`,
:attr:`mark`, :attr:`settings`) and for the model to label with
(:meth:`labeling`).
"""
import contextlib
import hashlib
import json
import os.path as osp
from typing import Callable, Iterator, Optional, Union

import torch
from torch import nn

from ..seg_heads import score_floor
from .flip_voting import FLIP_VOTING_MARK, FlipVotingTTA
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


def build_labeling_teacher(config: Union[str, dict], checkpoint: str,
                           device: Union[str, torch.device],
                           dataset_meta: dict) -> nn.Module:
    """A frozen teacher from ``config`` (a config file or its model dict)
    and ``checkpoint`` on ``device``, with ``dataset_meta`` when its
    checkpoint has none."""
    teacher = build_frozen_teacher(config, checkpoint)
    teacher.to(device)
    if getattr(teacher, 'dataset_meta', None) is None:
        teacher.dataset_meta = dataset_meta
    return teacher


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s parameters (CPU when it has none)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device('cpu')


class LabelingTeacher:
    """The teacher that labels: ``live`` or, without it, ``build()``'s.

    Args:
        live (nn.Module, optional): The wrapper's teacher.
        build (callable, optional): Makes the teacher when there is no
            ``live`` one; called on the first :meth:`get` only.
        config (str, optional): The config file ``build`` reads, which names
            the teacher in the pseudo-label header.
        checkpoint (str, optional): The checkpoint ``build`` loads, whose
            sha256 identifies the weights in the header.
        test_time_flip (bool): Label each image and its mirror image, fused
            by mask voting (:class:`FlipVotingTTA`). Defaults to False.
        model_cfg (dict, optional): The model ``build`` makes (default: the
            ``model`` of ``config``), whose settings identify the labels.
    """

    def __init__(self,
                 live: Optional[nn.Module] = None,
                 build: Optional[Callable[[], nn.Module]] = None,
                 config: Optional[str] = None,
                 checkpoint: Optional[str] = None,
                 test_time_flip: bool = False,
                 model_cfg: Optional[dict] = None) -> None:
        if (live is None) == (build is None):
            raise ValueError('LabelingTeacher needs either live or build')
        self.test_time_flip = bool(test_time_flip)
        self.live = None if live is None else self._augmented(live)
        self.config = config
        self.checkpoint = checkpoint
        self.model_cfg = model_cfg
        self._build = build
        self._built: Optional[nn.Module] = None

    @classmethod
    def of_files(cls,
                 config: str,
                 checkpoint: str,
                 device: Union[str, torch.device],
                 dataset_meta: dict,
                 model_cfg: Optional[dict] = None,
                 test_time_flip: bool = False) -> 'LabelingTeacher':
        """The frozen teacher of ``config`` and ``checkpoint``, built on
        ``device`` when first needed (from ``model_cfg``, e.g. the config's
        model with command-line overrides, when given)."""
        source = config if model_cfg is None else model_cfg
        return cls(build=lambda: build_labeling_teacher(
            source, checkpoint, device, dataset_meta), config=config,
            checkpoint=checkpoint, test_time_flip=test_time_flip,
            model_cfg=model_cfg)

    @property
    def settings(self) -> Optional[str]:
        """The sha256 of what, beside its weights, decides its labels: the
        ``test_cfg`` of each module of a live teacher, else the resolved
        model config it is built from (``None``: neither can be read)."""
        if self.live is not None:
            settings = {name: module.test_cfg for name, module in
                        self.live.named_modules()
                        if getattr(module, 'test_cfg', None) is not None}
        elif self.model_cfg is not None:
            settings = self.model_cfg
        elif self.config is not None and osp.isfile(self.config):
            from mmengine.config import Config
            settings = Config.fromfile(self.config).model
        else:
            return None
        text = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def mark(self) -> str:
        """What the header's ``teacher`` gets appended (mirror voting)."""
        return FLIP_VOTING_MARK if self.test_time_flip else ''

    def _augmented(self, teacher: nn.Module) -> nn.Module:
        return FlipVotingTTA(teacher) if self.test_time_flip else teacher

    def get(self) -> nn.Module:
        """The teacher (built now if it has to be)."""
        if self.live is not None:
            return self.live
        if self._built is None:
            self._built = self._augmented(self._build())
        return self._built

    @contextlib.contextmanager
    def labeling(self, score_thr: float) -> Iterator[nn.Module]:
        """The teacher to label with, for a filter keeping the instances
        scored above ``score_thr``: a lean fusion head of its own leaves
        the others out before resampling their masks (:func:`score_floor`;
        a teacher with mirror voting is left as it is, its votes need both
        views' instances)."""
        teacher = self.get()
        with score_floor(teacher, score_thr):
            yield teacher

    def release(self) -> None:
        """Drop the references to the teacher, so that its memory can be
        freed once the labels are on disk; :meth:`get` no longer works."""
        self.live = self._build = self._built = None
