# Copyright (c) mmcast contributors. All rights reserved.
"""Mask2Former head whose set-prediction losses are computed in float32."""
from typing import List, Tuple

import torch
from mmdet.models.dense_heads import Mask2FormerHead
from mmdet.registry import MODELS
from mmdet.utils import InstanceList
from torch import Tensor


@MODELS.register_module()
class FP32LossMask2FormerHead(Mask2FormerHead):
    """:class:`Mask2FormerHead` that computes its losses in float32 under AMP.

    Each decoder layer's matching, ``loss_cls``, ``loss_mask`` and
    ``loss_dice`` run on float32 copies of the predictions with autocast
    off; without autocast the losses are the stock head's. Config: the
    stock head's arguments.
    """

    def _loss_by_feat_single(self, cls_scores: Tensor, mask_preds: Tensor,
                             batch_gt_instances: InstanceList,
                             batch_img_metas: List[dict]) -> Tuple[Tensor]:
        """One decoder layer's set-prediction losses, in float32.

        Under fp16 autocast the stock head makes its loss normalisers with
        ``cls_scores.new_tensor``, i.e. in fp16: ``loss_mask``'s
        ``num_total_masks * num_points`` passes fp16's largest value (65504)
        once a GPU's batch holds 6 target masks (12544 points each), and the
        loss becomes 0 or NaN. The losses here run on float32 copies of the
        predictions with autocast off, as the matching does
        (``FP32HungarianAssigner``); gradients flow back through the casts.

        Args:
            cls_scores (Tensor): Class logits (B, K, C+1), any float dtype.
            mask_preds (Tensor): Mask logits (B, K, H, W), any float dtype.
            batch_gt_instances (list[:obj:`InstanceData`]): Targets.
            batch_img_metas (list[dict]): Image metas.

        Returns:
            tuple[Tensor]: ``loss_cls``, ``loss_mask``, ``loss_dice``
            (float32 scalars).
        """
        with torch.autocast(cls_scores.device.type, enabled=False):
            return super()._loss_by_feat_single(cls_scores.float(),
                                                mask_preds.float(),
                                                batch_gt_instances,
                                                batch_img_metas)
