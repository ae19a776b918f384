# Copyright (c) mmcast contributors. All rights reserved.
"""SegDataPreProcessor for depth + segmentation batches."""
from typing import Any, Dict, List, Optional

from mmengine.structures import BaseDataElement
from torch import nn

from mmseg.models import SegDataPreProcessor
from mmseg.registry import MODELS


@MODELS.register_module()
class MultiTaskSegDataPreProcessor(SegDataPreProcessor):
    """:class:`SegDataPreProcessor` that pads depth with "invalid" and runs
    batch augmentations built from configs.

    mmseg 1.2.2's ``stack_batch`` pads ``gt_depth_map`` with ``seg_pad_val``
    (255: 255 m of depth) and its ``SegDataPreProcessor`` keeps
    ``batch_augments`` as given and calls it as one callable, so it cannot be
    configured with dicts. This subclass, in training:

    1. stacks and pads the batch as :class:`SegDataPreProcessor` does
       (images with ``pad_val``, ``gt_sem_seg`` with ``seg_pad_val``);
    2. sets the padded border of ``gt_depth_map`` to ``depth_pad_val``
       (0 = invalid: no depth loss there);
    3. applies the batch augmentations in order, each called as
       ``inputs, data_samples = augment(inputs, data_samples)``.

    Outside training it is :class:`SegDataPreProcessor` unchanged.

    Args:
        depth_pad_val (float): Padding value of ``gt_depth_map``.
            Defaults to 0.
        batch_augments (list[dict], optional): Configs of batch augmentations
            in mmseg's ``MODELS`` (e.g. ``dict(type='CutMixPatches')``).
            Defaults to None.
        **kwargs: Other arguments of :class:`SegDataPreProcessor` (``mean``,
            ``std``, ``size``/``size_divisor`` (one of them is needed in
            training), ``pad_val``, ``seg_pad_val``, ``bgr_to_rgb``,
            ``test_cfg``).
    """

    def __init__(self,
                 depth_pad_val: float = 0.0,
                 batch_augments: Optional[List[dict]] = None,
                 **kwargs) -> None:
        if batch_augments is not None and not isinstance(
                batch_augments, (list, tuple)):
            raise TypeError('batch_augments must be a list of config dicts, '
                            f'got {batch_augments!r}')
        super().__init__(batch_augments=None, **kwargs)
        self.depth_pad_val = depth_pad_val
        self.joint_batch_augments = nn.ModuleList(
            [MODELS.build(cfg) for cfg in batch_augments or []])

    def _pad_depth_border(self, sample: BaseDataElement) -> None:
        """Overwrite the bottom/right padding of ``gt_depth_map`` (recorded
        by ``stack_batch`` as ``padding_size = (left, right, top, bottom)``)
        with ``depth_pad_val``."""
        if 'gt_depth_map' not in sample:
            return
        _, right, _, bottom = sample.padding_size
        depth = sample.gt_depth_map.data
        height, width = depth.shape[-2:]
        if bottom > 0:
            depth[..., height - bottom:, :] = self.depth_pad_val
        if right > 0:
            depth[..., :, width - right:] = self.depth_pad_val

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        """Normalise, pad and stack a batch; augment it in training.

        Args:
            data (dict): A batch from the dataloader: ``inputs`` (list of
                ``(3, H_i, W_i)`` tensors) and ``data_samples``.
            training (bool): Whether the batch is for training.

        Returns:
            dict: ``inputs`` ``(B, 3, H, W)`` and ``data_samples`` whose
            ``gt_sem_seg`` and ``gt_depth_map`` are ``(1, H, W)``.
        """
        data = super().forward(data, training)
        if not training:
            return data
        inputs, data_samples = data['inputs'], data['data_samples']
        for sample in data_samples:
            self._pad_depth_border(sample)
        for augment in self.joint_batch_augments:
            inputs, data_samples = augment(inputs, data_samples)
        return dict(inputs=inputs, data_samples=data_samples)
