# Copyright (c) mmcast contributors. All rights reserved.
"""2x learned upsampling of a feature map (EoMT's scale block)."""
from mmdet.registry import MODELS
from timm.layers import LayerNorm2d
from torch import Tensor, nn


@MODELS.register_module()
class ScaleBlock(nn.Module):
    """Transposed 2x2 conv (stride 2), GELU, depthwise 3x3 conv, LayerNorm.

    The upsampling block of EoMT (Kerssies et al., CVPR 2025) that brings
    the ViT's patch features to the mask resolution, one octave per block.

    Args:
        channels (int): Input and output channels.

    Shapes:
        ``(B, channels, h, w)`` -> ``(B, channels, 2h, 2w)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(
            channels, channels, kernel_size=2, stride=2)
        self.act = nn.GELU()
        self.dwconv = nn.Conv2d(
            channels, channels, kernel_size=3, padding=1, groups=channels,
            bias=False)
        self.norm = LayerNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, h, w) -> (B, C, 2h, 2w)."""
        return self.norm(self.dwconv(self.act(self.up(x))))
