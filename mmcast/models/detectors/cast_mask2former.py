# Copyright (c) mmcast contributors. All rights reserved.
"""Mask2Former trained with CAST's pixel-wise contrastive term."""
from typing import Dict

import torch
from mmdet.models.detectors import Mask2Former
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType
from torch import Tensor


@MODELS.register_module()
class CASTMask2Former(Mask2Former):
    """Mask2Former whose loss adds ``λ_pxl · L_pxl`` on a strong view.

    The strong view is a pixel-aligned photometric copy of the (already
    normalised and padded) batch; it goes through the same backbone without
    gradient and feeds :class:`CASTMask2FormerHead`'s contrastive branch.
    Prediction is stock Mask2Former. Used for the teacher in stage 1 and for
    the student in stages 2 and 3 alike.

    Args:
        strong_view (dict): Config of the photometric augmentation
            (``PhotometricStrongView``); ``mean``/``std`` default to the data
            preprocessor's.
        *args, **kwargs: Passed to :class:`Mask2Former`.
    """

    def __init__(self,
                 *args,
                 strong_view: ConfigType = dict(type='PhotometricStrongView'),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        strong_view = dict(strong_view)
        strong_view.setdefault('mean', self.data_preprocessor.mean.flatten().tolist())
        strong_view.setdefault('std', self.data_preprocessor.std.flatten().tolist())
        self.strong_view = MODELS.build(strong_view)

    @property
    def with_pixel_contrast(self) -> bool:
        """Whether the head computes the contrastive loss."""
        return getattr(self.panoptic_head, 'with_pixel_contrast', False)

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Supervised Mask2Former losses plus ``loss_pxl``.

        Args:
            batch_inputs (Tensor): Normalised, padded images (B, 3, H, W).
            batch_data_samples (list[:obj:`DetDataSample`]): With
                ``gt_instances`` (ground truth or pseudo-labels).

        Returns:
            dict[str, Tensor]: The head's losses and logged statistics.
        """
        x = self.extract_feat(batch_inputs)
        strong_x = None
        if self.with_pixel_contrast:
            with torch.no_grad():
                strong_x = self.extract_feat(self.strong_view(batch_inputs))
        return self.panoptic_head.loss(x, batch_data_samples, strong_x=strong_x)
