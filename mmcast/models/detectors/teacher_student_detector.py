# Copyright (c) mmcast contributors. All rights reserved.
"""How mmcast's teacher–student wrappers hold their teacher."""
from typing import List, Optional

from mmdet.models.detectors import BaseDetector
from mmdet.utils import OptConfigType, OptMultiConfig
from torch import nn


class TeacherStudentDetector(BaseDetector):
    """Base of the wrappers that train a student from a teacher they hold.

    The one place where a wrapper's teacher is kept. The class attribute
    :attr:`teacher_in_state_dict` says how:

    - ``False`` (a frozen teacher, CAST): outside the module tree, so not
      in ``parameters()`` (hence not in the optimizer), not in
      ``state_dict`` (checkpoints hold no ``teacher.*`` keys) and not
      wrapped by DDP; :meth:`_apply` moves and casts it with the wrapper.
    - ``True`` (a teacher that changes during training, Guided
      Distillation): the submodule ``teacher``, so ``teacher.*`` is in
      ``state_dict`` (checkpoints, ``--resume``) and its parameters (without
      gradients) are the wrapper's.

    Either way it follows the wrapper's device (``.to()``, ``.cuda()``) and
    stays in ``eval()`` whatever the wrapper's mode. Subclasses build the
    teacher and hand it over with :meth:`_hold_teacher`.
    """

    teacher_in_state_dict: bool = False

    def __init__(self,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self._detached_teacher: List[nn.Module] = []

    @property
    def teacher(self) -> Optional[nn.Module]:
        """The teacher, or None when the wrapper has none (left)."""
        if self.teacher_in_state_dict:
            return self._modules.get('teacher')
        return self._detached_teacher[0] if self._detached_teacher else None

    def _hold_teacher(self, model: nn.Module) -> None:
        """Keep ``model`` as the teacher, as :attr:`teacher_in_state_dict`
        says."""
        if self.teacher_in_state_dict:
            # the ``teacher`` property hides the name from ``add_module``
            self._modules['teacher'] = model
        else:
            self._detached_teacher[:] = [model]

    def _drop_teacher(self) -> int:
        """Let go of the teacher.

        Returns:
            int: The number of its parameters (0 without a teacher).
        """
        teacher = self.teacher
        if teacher is None:
            return 0
        if self.teacher_in_state_dict:
            del self._modules['teacher']
        else:
            self._detached_teacher.clear()
        return sum(p.numel() for p in teacher.parameters())

    def train(self, mode: bool = True) -> 'TeacherStudentDetector':
        """Set the wrapper's mode; the teacher stays in ``eval()``."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def _apply(self, fn, *args, **kwargs) -> 'TeacherStudentDetector':
        """Move/cast a teacher held outside the module tree along with the
        wrapper (``.to()``, ``.cuda()``, ``.half()``)."""
        super()._apply(fn, *args, **kwargs)
        for teacher in self._detached_teacher:
            teacher._apply(fn, *args, **kwargs)
        return self
