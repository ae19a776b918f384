# Copyright (c) mmcast contributors. All rights reserved.
"""Hungarian matching whose costs are computed in float32 under AMP."""
from typing import Optional

import torch
from mmdet.models.task_modules import AssignResult, HungarianAssigner
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData


def _float32_copy(instances: InstanceData) -> InstanceData:
    """The same instances with every floating-point tensor in float32."""
    return instances.new(
        **{
            key: value.float() if torch.is_tensor(value)
            and value.is_floating_point() else value
            for key, value in instances.items()
        })


@TASK_UTILS.register_module()
class FP32HungarianAssigner(HungarianAssigner):
    """:class:`HungarianAssigner` that matches in float32 under autocast.

    Under mixed precision (``AmpOptimWrapper``) MMDetection's mask match
    costs run their ``einsum`` over ``num_points`` sampled points as fp16
    matmuls: ``CrossEntropyLossCost`` sums a per-point BCE of up to
    ``|logit|`` over 12544 points, which passes fp16's 65504 as soon as the
    mask logits are large, and the resulting ``inf``/``nan`` costs make
    ``linear_sum_assignment`` raise ``ValueError: cost matrix is
    infeasible`` (open-mmlab/mmdetection#10909, #11559). This assigner
    computes the costs on float32 copies of the predictions and targets
    with autocast disabled (and without gradient: the matching is not
    differentiated); without autocast it matches exactly as the stock one.

    Args:
        match_costs (dict | list[dict]): Match cost configs, as
            :class:`HungarianAssigner`.
    """

    def assign(self,
               pred_instances: InstanceData,
               gt_instances: InstanceData,
               img_meta: Optional[dict] = None,
               **kwargs) -> AssignResult:
        """One-to-one matching of predictions and ground truth in float32.

        Args:
            pred_instances (:obj:`InstanceData`): Predictions, e.g.
                ``scores`` (num_preds, num_classes + 1) and point-sampled
                mask logits ``masks`` (num_preds, num_points), any float
                dtype.
            gt_instances (:obj:`InstanceData`): Targets, e.g. ``labels``
                (num_gts, ) and ``masks`` (num_gts, num_points).
            img_meta (dict, optional): Image information.

        Returns:
            :obj:`AssignResult`: ``gt_inds`` (num_preds, ): 0 for
            background, else the 1-based index of the matched target.
        """
        device_type = gt_instances.labels.device.type
        with torch.no_grad(), torch.autocast(device_type, enabled=False):
            return super().assign(
                _float32_copy(pred_instances), _float32_copy(gt_instances),
                img_meta=img_meta, **kwargs)
