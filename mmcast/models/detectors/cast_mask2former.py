# Copyright (c) mmcast contributors. All rights reserved.
"""Mask2Former trained with CAST's pixel-wise contrastive term."""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.detectors import Mask2Former
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType
from torch import Tensor

from ..layers.photometric_strong_view import complete_strong_view_cfg
from ..seg_heads import LeanMaskFormerFusionHead


@MODELS.register_module()
class CASTMask2Former(Mask2Former):
    """Mask2Former whose loss adds ``λ_pxl · L_pxl`` on a strong view.

    The strong view is a pixel-aligned photometric copy of the (already
    normalised and padded) batch; it goes through the same backbone without
    gradient and feeds :class:`CASTMask2FormerHead`'s contrastive branch
    (built only with that branch; with a stock ``Mask2FormerHead`` the model
    trains as stock Mask2Former). Prediction is stock Mask2Former's, except
    that a ``LeanMaskFormerFusionHead`` gets the mask logits at the head's
    resolution, before any upsampling. Used for every Mask2Former mmcast
    ships: teachers, students and labels-only baselines.

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
        self.strong_view = MODELS.build(complete_strong_view_cfg(
            strong_view, self.data_preprocessor)) \
            if self.with_pixel_contrast else None

    @property
    def with_pixel_contrast(self) -> bool:
        """Whether the head computes the contrastive loss."""
        return getattr(self.panoptic_head, 'with_pixel_contrast', False)

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Supervised Mask2Former losses plus ``loss_pxl`` (stock losses
        with a head without the contrastive branch).

        Args:
            batch_inputs (Tensor): Normalised, padded images (B, 3, H, W).
            batch_data_samples (list[:obj:`DetDataSample`]): With
                ``gt_instances`` (ground truth or pseudo-labels).

        Returns:
            dict[str, Tensor]: The head's losses and logged statistics.
        """
        if not hasattr(self.panoptic_head, 'loss_branches'):
            return super().loss(batch_inputs, batch_data_samples)  # stock
        branch_losses, contrast_losses = self.loss_branches(
            dict(batch=batch_inputs), dict(batch=batch_data_samples))
        losses = branch_losses['batch']
        losses.update(contrast_losses)
        return losses

    def loss_branches(
        self, multi_batch_inputs: Dict[str, Tensor],
        multi_batch_data_samples: Dict[str, SampleList]
    ) -> Tuple[Dict[str, Dict[str, Tensor]], Dict[str, Tensor]]:
        """Losses of several branches (e.g. labeled and pseudo-labeled) in
        one forward pass of the backbone, strong view and head.

        Branches padded to different shapes are padded to a common one first
        (:func:`concat_branches`). Needs a head with ``loss_branches``
        (:class:`CASTMask2FormerHead`).

        Args:
            multi_batch_inputs (dict[str, Tensor]): Each branch's images
                (B_i, 3, H_i, W_i), normalised and padded.
            multi_batch_data_samples (dict[str, list[DetDataSample]]): Each
                branch's samples with ``gt_instances``.

        Returns:
            tuple[dict, dict]: Set-prediction losses per branch, and the
            contrastive loss and statistics over all images.
        """
        names = list(multi_batch_inputs)
        inputs = concat_branches(multi_batch_inputs, multi_batch_data_samples)
        x = self.extract_feat(inputs)
        strong_x = None
        if self.with_pixel_contrast:
            with torch.no_grad():
                strong_x = self.extract_feat(self.strong_view(inputs))
        return self.panoptic_head.loss_branches(
            x, {n: multi_batch_data_samples[n] for n in names}, strong_x)

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Instance predictions of a batch.

        Args:
            batch_inputs (Tensor): Normalised, padded images (B, 3, H, W).
            batch_data_samples (list[:obj:`DetDataSample`]): Their metainfo.
            rescale (bool): Results in the original image shape.

        Returns:
            list[:obj:`DetDataSample`]: With ``pred_instances``.
        """
        if not isinstance(self.panoptic_fusion_head,
                          LeanMaskFormerFusionHead):
            return super().predict(batch_inputs, batch_data_samples, rescale)
        feats = self.extract_feat(batch_inputs)
        all_cls_scores, all_mask_preds = self.panoptic_head(
            feats, batch_data_samples)
        results_list = self.panoptic_fusion_head.predict(
            all_cls_scores[-1], all_mask_preds[-1], batch_data_samples,
            rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results_list)


def concat_branches(multi_batch_inputs: Dict[str, Tensor],
                    multi_batch_data_samples: Dict[str, SampleList]) -> Tensor:
    """The images of all branches in one batch, in branch order.

    Branches padded to different shapes are padded (bottom/right, with their
    target masks and ``batch_input_shape``) to a common one first.

    Args:
        multi_batch_inputs (dict[str, Tensor]): Each branch's images
            (B_i, 3, H_i, W_i), normalised and padded.
        multi_batch_data_samples (dict[str, list[DetDataSample]]): Each
            branch's samples, updated in place where padded.

    Returns:
        Tensor: (sum B_i, 3, max H_i, max W_i).
    """
    height = max(v.shape[-2] for v in multi_batch_inputs.values())
    width = max(v.shape[-1] for v in multi_batch_inputs.values())
    padded = []
    for name, inputs in multi_batch_inputs.items():
        pad_h, pad_w = height - inputs.shape[-2], width - inputs.shape[-1]
        if pad_h or pad_w:
            for sample in multi_batch_data_samples[name]:
                sample.set_metainfo(dict(batch_input_shape=(height, width)))
                gt = sample.gt_instances
                if 'masks' in gt:
                    gt.masks = gt.masks.pad((height, width), pad_val=0)
            inputs = F.pad(inputs, (0, pad_w, 0, pad_h), value=0)
        padded.append(inputs)
    return torch.cat(padded)
