# Copyright (c) mmcast contributors. All rights reserved.
"""The depth head of SwinMTL with logarithmic or linear depth scaling."""
import math
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS


@MODELS.register_module()
class SwinMTLDepthHead(BaseModule):
    """Conv3×3 → ReLU → Conv3×3 → 1 channel → sigmoid, decoded to metres.

    The head predicts ``σ ∈ (0, 1)``, a normalised depth, that
    :meth:`decode` turns into metres and :meth:`encode` computes from
    metres:

    - ``'log'`` (the paper's logarithmic depth scaling):
      ``d = d_min · exp(ln(d_max / d_min) · σ)``, so σ = 0 is ``d_min`` and
      σ = 1 is ``d_max``, with equal steps of σ giving equal depth ratios;
    - ``'linear'`` (the ablation without it): ``d = d_max · σ``.

    ``[min_depth, max_depth]`` is also the range of valid ground truth, of
    the loss and of the critic's real samples (1e-3 < d < 80 m on
    Cityscapes; NYUv2 uses ``max_depth=10``).

    Args:
        in_channels (int): Channels of the decoder map. Defaults to 128.
        channels (int): Channels of the hidden convolution. Defaults to 128.
        depth_scaling (str): ``'log'`` or ``'linear'``. Defaults to
            ``'log'``.
        min_depth (float): ``d_min`` in metres. Defaults to 1e-3.
        max_depth (float): ``d_max`` in metres. Defaults to 80.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int = 128,
                 channels: int = 128,
                 depth_scaling: str = 'log',
                 min_depth: float = 1e-3,
                 max_depth: float = 80.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if depth_scaling not in ('log', 'linear'):
            raise ValueError("depth_scaling must be 'log' or 'linear', got "
                             f'{depth_scaling!r}')
        if not 0 < min_depth < max_depth:
            raise ValueError('need 0 < min_depth < max_depth, got '
                             f'min_depth={min_depth}, max_depth={max_depth}')
        self.depth_scaling = depth_scaling
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1),
            nn.ReLU(inplace=True), nn.Conv2d(channels, 1, 3, padding=1),
            nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        """Predict the normalised depth.

        Args:
            x (Tensor): Decoder map ``(B, in_channels, H, W)``.

        Returns:
            Tensor: σ ``(B, 1, H, W)`` in (0, 1), float32 also under
            autocast: the output convolution and the sigmoid run in float32,
            since a half-precision σ would quantise the decoded depth (a
            bfloat16 step of σ near 0.3 is a ~1 % step of log-scaled depth).
        """
        hidden = self.layers[:2](x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.layers[2:](hidden.float())

    def decode(self, sigma: Tensor) -> Tensor:
        """Normalised depth σ → metres.

        Args:
            sigma (Tensor): σ in [0, 1], any shape.

        Returns:
            Tensor: Depth in metres, same shape.
        """
        if self.depth_scaling == 'log':
            return self.min_depth * (
                math.log(self.max_depth / self.min_depth) * sigma).exp()
        return self.max_depth * sigma

    def encode(self, depth: Tensor) -> Tensor:
        """Metres → normalised depth σ, the inverse of :meth:`decode`.

        Depths outside ``[min_depth, max_depth]`` (``[0, max_depth]`` for
        linear scaling) are clamped into it first, so that invalid pixels
        (0) give finite values; mask them separately.

        Args:
            depth (Tensor): Depth in metres, any shape.

        Returns:
            Tensor: σ in [0, 1], same shape.
        """
        if self.depth_scaling == 'log':
            depth = depth.clamp(self.min_depth, self.max_depth)
            return (depth / self.min_depth).log() / math.log(
                self.max_depth / self.min_depth)
        return depth.clamp(0.0, self.max_depth) / self.max_depth

    def valid_mask(self, depth: Tensor) -> Tensor:
        """Ground-truth pixels in the valid range.

        Args:
            depth (Tensor): Ground-truth depth in metres, 0 = no depth.

        Returns:
            Tensor: bool, ``min_depth < depth < max_depth``, same shape.
        """
        return (depth > self.min_depth) & (depth < self.max_depth)
