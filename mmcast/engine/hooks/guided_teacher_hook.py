# Copyright (c) mmcast contributors. All rights reserved.
"""Guided Distillation's teacher schedule: guided burn-in, switch, EMA."""
from typing import Optional

from mmdet.engine.hooks import MeanTeacherHook
from mmdet.registry import HOOKS
from mmengine.runner import Runner
from torch import nn

from mmcast.utils import unwrap_model

DATA_BATCH = Optional[dict]


@HOOKS.register_module()
class GuidedTeacherHook(MeanTeacherHook):
    """The teacher of a :class:`GuidedDistiller` through training.

    With ``n`` the number of finished iterations (``runner.iter + 1`` after
    an iteration):

    * ``n < burn_in_iters`` (guided burn-in): the teacher is the frozen
      pre-trained model and is not touched;
    * ``n == burn_in_iters`` (the switch): teacher ← student, an exact copy
      of parameters and buffers;
    * ``n > burn_in_iters``: ``teacher = decay · teacher + (1 - decay) ·
      student`` for every parameter and floating-point buffer (BN
      statistics), every ``interval`` iterations (MeanTeacherHook's update
      with ``skip_buffer=False``); integer buffers keep the switch's copy.

    Unlike ``MeanTeacherHook`` it does not copy the student into the
    teacher at iteration 0. The teacher is part of the checkpoint and the
    schedule depends on ``runner.iter`` alone, so ``--resume`` before, at or
    after the switch continues exactly.

    Args:
        burn_in_iters (int): Iterations of guided burn-in (GD: 50,000 of
            90,000 on Cityscapes).
        decay (float): EMA decay after the switch. Defaults to 0.9996.
        interval (int): EMA update every this many iterations. Defaults
            to 1.
    """

    def __init__(self,
                 burn_in_iters: int,
                 decay: float = 0.9996,
                 interval: int = 1) -> None:
        if not isinstance(burn_in_iters, int) or burn_in_iters < 1:
            raise ValueError(
                'burn_in_iters must be an integer >= 1, got '
                f'{burn_in_iters!r}')
        if not 0 < decay < 1:
            raise ValueError(f'decay must be in (0, 1), got {decay!r}')
        super().__init__(momentum=1 - decay, interval=interval,
                         skip_buffer=False)
        self.burn_in_iters = burn_in_iters
        self.decay = decay

    def before_train(self, runner: Runner) -> None:
        """Check the wrapper: same teacher and student state keys, the
        teacher's classes (checkpoint meta) those of the data, and a
        pre-trained teacher when training starts from scratch."""
        model = unwrap_model(runner.model)
        for name in ('teacher', 'student'):
            if not isinstance(getattr(model, name, None), nn.Module):
                raise TypeError(
                    f'GuidedTeacherHook needs a model with a {name}, got '
                    f'{type(model).__name__}')
        teacher_keys = set(model.teacher.state_dict())
        student_keys = set(model.student.state_dict())
        if teacher_keys != student_keys:
            diff = sorted(teacher_keys ^ student_keys)
            raise ValueError(
                'teacher and student must share an architecture (the switch '
                f'copies the student): {len(diff)} state keys differ, e.g. '
                f'{diff[:3]}')
        classes = runner.train_dataloader.dataset.metainfo.get('classes')
        if hasattr(model, 'check_classes') and classes:
            model.check_classes(classes)  # pseudo-label ids must mean the same
        if runner.iter == 0 and \
                getattr(model, 'teacher_checkpoint', '') is None:
            raise ValueError(
                'model.teacher_checkpoint is None: guided burn-in needs the '
                'supervised teacher\'s weights')
        if runner.iter >= self.burn_in_iters:
            runner.logger.info(
                f'GuidedTeacherHook: resuming after the switch (iteration '
                f'{self.burn_in_iters}); the teacher is the EMA from the '
                'checkpoint')

    def after_train_iter(self,
                         runner: Runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Switch or EMA-update the teacher after iteration ``runner.iter``."""
        done = runner.iter + 1
        if done < self.burn_in_iters:
            return
        model = unwrap_model(runner.model)
        if done == self.burn_in_iters:
            model.teacher.load_state_dict(model.student.state_dict())
            runner.logger.info(
                f'GuidedTeacherHook: iteration {done}: teacher <- student '
                f'(EMA with decay {self.decay} from now on)')
        elif (done - self.burn_in_iters) % self.interval == 0:
            self.momentum_update(model, self.momentum)
