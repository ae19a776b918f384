# Copyright (c) mmcast contributors. All rights reserved.
"""The shared decoder of SwinMTL."""
from typing import Optional, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS


@MODELS.register_module()
class SwinMTLDecoder(BaseModule):
    """Upsample the last encoder stage to a full-resolution feature map.

    ``num_deconvs`` × [ConvTranspose 2×2 stride 2 → ``deconv_channels``, BN,
    ReLU], then Conv3×3 → ``out_channels`` + BN + ReLU, then two bilinear ×2
    upsamplings, the second one to exactly the input size (they are the same
    when the input size is a multiple of 32). With the default three deconvs
    a stride-32 feature comes out at stride 1.

    Args:
        in_channels (int): Channels of the encoder feature (1024 for
            SwinV2-B).
        deconv_channels (int): Channels of the deconvolutions. Defaults to
            32.
        num_deconvs (int): Number of ×2 deconvolutions. Defaults to 3.
        out_channels (int): Channels of the output map. Defaults to 128.
        norm_cfg (dict): Norm layer after every convolution. Defaults to
            ``dict(type='BN')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 deconv_channels: int = 32,
                 num_deconvs: int = 3,
                 out_channels: int = 128,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.out_channels = out_channels
        deconvs = []
        for i in range(num_deconvs):
            deconvs.append(
                ConvModule(
                    in_channels if i == 0 else deconv_channels,
                    deconv_channels,
                    kernel_size=2,
                    stride=2,
                    conv_cfg=dict(type='deconv'),
                    norm_cfg=norm_cfg,
                    act_cfg=dict(type='ReLU')))
        self.deconvs = nn.Sequential(*deconvs)
        self.conv = ConvModule(
            deconv_channels if num_deconvs else in_channels,
            out_channels,
            kernel_size=3,
            padding=1,
            norm_cfg=norm_cfg,
            act_cfg=dict(type='ReLU'))

    def forward(self, x: Tensor, out_size: Tuple[int, int]) -> Tensor:
        """Decode a stride-32 feature.

        Args:
            x (Tensor): ``(B, in_channels, h, w)``.
            out_size (tuple[int, int]): ``(H, W)`` of the network input.

        Returns:
            Tensor: ``(B, out_channels, H, W)``.
        """
        x = self.conv(self.deconvs(x))
        x = F.interpolate(
            x, scale_factor=2, mode='bilinear', align_corners=False)
        return F.interpolate(
            x, size=out_size, mode='bilinear', align_corners=False)
