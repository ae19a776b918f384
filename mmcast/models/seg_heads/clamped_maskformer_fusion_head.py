# Copyright (c) mmcast contributors. All rights reserved.
"""MaskFormer's fusion head for any number of classes."""
from mmdet.models.seg_heads.panoptic_fusion_heads import MaskFormerFusionHead
from mmdet.registry import MODELS
from mmengine.structures import InstanceData
from torch import Tensor


@MODELS.register_module()
class ClampedMaskFormerFusionHead(MaskFormerFusionHead):
    """:class:`MaskFormerFusionHead` whose instance inference keeps at most
    ``num_queries × num_classes`` detections per image.

    The stock ``instance_postprocess`` takes the top ``max_per_image``
    (query, class) pairs of the ``(num_queries, num_classes)`` score matrix,
    which fails when there are fewer pairs than ``max_per_image`` (e.g. 20
    queries and one or two classes under ``max_per_image=50``). Here the
    stock method runs with ``max_per_image`` clamped to the number of pairs,
    so every query × class pair is kept then; otherwise nothing changes.

    Args:
        **kwargs: Passed to :class:`MaskFormerFusionHead`; ``test_cfg``
            (the detector's) holds ``max_per_image`` (default 100).
    """

    def instance_postprocess(self, mask_cls: Tensor,
                             mask_pred: Tensor) -> InstanceData:
        """Instance inference of one image (see the stock method).

        Args:
            mask_cls (Tensor): Classification logits (num_queries,
                num_classes + 1), the last one "no object".
            mask_pred (Tensor): Mask logits (num_queries, h, w).

        Returns:
            InstanceData: ``min(max_per_image, num_queries * num_classes)``
            instances (fewer where some are stuff classes) with ``scores``
            (n,), ``labels`` (n,), ``bboxes`` (n, 4) and bool ``masks``
            (n, h, w).
        """
        max_per_image = self.test_cfg.get('max_per_image', 100)
        if isinstance(max_per_image, bool) or not isinstance(
                max_per_image, int) or max_per_image < 1:
            raise ValueError('model.test_cfg.max_per_image must be an '
                             f'integer >= 1, got {max_per_image!r}')
        num_pairs = mask_cls.shape[0] * self.num_classes
        if max_per_image <= num_pairs:
            return super().instance_postprocess(mask_cls, mask_pred)
        test_cfg = self.test_cfg
        self.test_cfg = dict(test_cfg, max_per_image=num_pairs)
        try:
            return super().instance_postprocess(mask_cls, mask_pred)
        finally:
            self.test_cfg = test_cfg
