# Copyright (c) mmcast contributors. All rights reserved.
"""The teacher–student wrapper of Guided Distillation."""
from typing import Dict, Optional, Tuple, Union

import torch
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor, nn

from mmcast.pseudo_labels import (check_guided_rule_cfg,
                                  guided_distillation_pseudo_labels)
from ..layers.photometric_strong_view import complete_strong_view_cfg
from .cast_distiller import CASTDistiller

PREDICT_ON = ('student', 'teacher')


@MODELS.register_module()
class GuidedDistiller(CASTDistiller):
    """Guided Distillation (Berrada et al., WACV 2024) on CAST's wrapper.

    The student trains on labeled images (branch ``sup``) and on unlabeled
    images (branch ``unsup``) that the teacher labels inside every step
    (``CASTDistiller``'s online mode) with GD's per-query rule on its raw
    last-layer outputs (:func:`guided_distillation_pseudo_labels`). Both see
    the same geometric augmentation (done before ``MultiBranch``); the
    student's unlabeled view adds strong photometric changes
    (``PhotometricStrongView``, CAST's module). The unsup losses are
    weighted by ``unsup_weight`` (2.0); an image without pseudo-labels still
    trains every query towards "no object".

    Unlike CAST's, this teacher changes during training, so it is part of
    the model (``teacher_in_state_dict = True``, see
    :class:`TeacherStudentDetector`): ``teacher.*`` is in ``state_dict``
    (checkpoints, ``--resume``) while staying in ``eval()`` and without
    gradients. Its schedule (frozen
    pre-trained model during guided burn-in, then a copy of the student,
    then an EMA of it) is run by :class:`GuidedTeacherHook`; teacher and
    student must therefore share an architecture. The student is a fresh
    model (its own ``init_cfg``), not a copy of the teacher.

    Args:
        student (dict): The student detector's config (a Mask2Former or
            an :class:`EoMTStudent`).
        teacher (dict | str): The teacher's config (same architecture), or a
            config file whose ``model`` it is.
        teacher_checkpoint (str, optional): The supervised teacher's weights
            (GD's phase 1). None only when the weights come from a
            ``GuidedDistiller`` checkpoint (``mim test``, ``--resume``).
        semi_train_cfg (dict): ``sup_weight`` (1.0), ``unsup_weight``
            (2.0) and ``pseudo_label_rule`` (``score_thr`` 0.7,
            ``min_mask_area`` 5, ``mask_thr`` 0.5).
        semi_test_cfg (dict): ``predict_on``: ``'student'`` (default) or
            ``'teacher'``, the model that ``predict`` (``mim test``) uses.
        strong_view (dict): The student's photometric view of unlabeled
            images; ``mean``/``std`` default to the student's preprocessor.
        data_preprocessor (dict): ``MultiBranchDataPreprocessor``.
        init_cfg (dict, optional): Initialisation config.
    """

    teacher_in_state_dict = True

    def __init__(self,
                 student: ConfigType,
                 teacher: Union[ConfigType, str],
                 teacher_checkpoint: Optional[str] = None,
                 semi_train_cfg: ConfigType = dict(),
                 semi_test_cfg: ConfigType = dict(),
                 strong_view: ConfigType = dict(type='PhotometricStrongView'),
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        semi_train_cfg = dict(semi_train_cfg)
        mode = semi_train_cfg.pop('pseudo_label_mode', 'online')
        if mode != 'online':
            raise ValueError('Guided Distillation labels online: '
                             f'semi_train_cfg.pseudo_label_mode={mode!r}')
        rule = check_guided_rule_cfg(
            dict(semi_train_cfg.pop('pseudo_label_rule', {})))
        train_cfg = dict(unsup_weight=2.0)
        train_cfg.update(semi_train_cfg, pseudo_label_mode='online')
        super().__init__(
            student=student,
            teacher=teacher,
            teacher_checkpoint=teacher_checkpoint,
            semi_train_cfg=train_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.semi_train_cfg['pseudo_label_rule'] = rule
        self.semi_test_cfg = dict(predict_on='student')
        self.semi_test_cfg.update(semi_test_cfg)
        if self.semi_test_cfg['predict_on'] not in PREDICT_ON:
            raise ValueError(
                f'semi_test_cfg.predict_on must be one of {PREDICT_ON}, got '
                f'{self.semi_test_cfg["predict_on"]!r}')
        self.teacher_checkpoint = teacher_checkpoint
        self.strong_view = MODELS.build(
            complete_strong_view_cfg(strong_view,
                                     self.student.data_preprocessor))

    def loss(self, multi_batch_inputs: Dict[str, Tensor],
             multi_batch_data_samples: Dict[str, SampleList]) -> dict:
        """``sup_*`` and ``unsup_*`` (× 2.0) Mask2Former losses of a mixed
        batch, and ``pseudo_per_image``: the teacher's pseudo-instances per
        unlabeled image (logged, not a loss)."""
        losses = super().loss(multi_batch_inputs, multi_batch_data_samples)
        if 'unsup' in multi_batch_inputs:
            samples = multi_batch_data_samples['unsup']
            losses['pseudo_per_image'] = multi_batch_inputs['unsup'].new_full(
                (), sum(len(s.gt_instances) for s in samples) / len(samples))
        return losses

    def unsup_student_view(self, batch_inputs: Tensor) -> Tensor:
        """The strong photometric view (B, 3, H, W) of the teacher's view."""
        return self.strong_view(batch_inputs)

    @torch.no_grad()
    def label_online(self, batch_inputs: Tensor,
                     batch_data_samples: SampleList) -> SampleList:
        """Label a (B, 3, H, W) batch with the teacher's final prediction:
        a Mask2Former's last decoder layer (its ``_forward`` gives a list
        per layer) or an :class:`EoMTStudent`'s (its ``_forward`` gives the
        final (B, K, C + 1) and (B, K, h, w) logits).

        Sets each sample's ``gt_instances`` (labels, scores, padded
        :class:`TensorMasks`, on the device); images may get none.
        """
        cls_scores, mask_preds = self.teacher._forward(batch_inputs,
                                                       batch_data_samples)
        if isinstance(cls_scores, (list, tuple)):  # one per decoder layer
            cls_scores, mask_preds = cls_scores[-1], mask_preds[-1]
        pseudo = guided_distillation_pseudo_labels(
            cls_scores, mask_preds, batch_inputs.shape[-2:],
            **self.semi_train_cfg['pseudo_label_rule'])
        for sample, instances in zip(batch_data_samples, pseudo):
            sample.gt_instances = instances
        return batch_data_samples

    @property
    def predictor(self) -> nn.Module:
        """The model ``predict`` uses (``semi_test_cfg.predict_on``)."""
        return getattr(self, self.semi_test_cfg['predict_on'])

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Predict (B, 3, H, W) with the student (or the teacher)."""
        return self.predictor.predict(
            batch_inputs, batch_data_samples, rescale=rescale)

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: SampleList) -> Tuple:
        """Raw outputs of the student (or the teacher)."""
        return self.predictor._forward(batch_inputs, batch_data_samples)

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor]:
        """Features of (B, 3, H, W) images, student (or teacher)."""
        return self.predictor.extract_feat(batch_inputs)
