# Copyright (c) mmcast contributors. All rights reserved.
"""The semantic segmentation head of SwinMTL."""
from typing import Optional

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS


@MODELS.register_module()
class SwinMTLSegHead(BaseModule):
    """Conv3×3 → ReLU → Conv3×3 → ``num_classes`` logits.

    Args:
        num_classes (int): Number of classes (19 on Cityscapes).
        in_channels (int): Channels of the decoder map. Defaults to 128.
        channels (int): Channels of the hidden convolution. Defaults to 128.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 128,
                 channels: int = 128,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 2:
            raise ValueError(f'num_classes must be >= 2, got {num_classes}')
        self.num_classes = num_classes
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1),
            nn.ReLU(inplace=True), nn.Conv2d(channels, num_classes, 3,
                                             padding=1))

    def forward(self, x: Tensor) -> Tensor:
        """Predict class logits.

        Args:
            x (Tensor): Decoder map ``(B, in_channels, H, W)``.

        Returns:
            Tensor: ``(B, num_classes, H, W)``.
        """
        return self.layers(x)
