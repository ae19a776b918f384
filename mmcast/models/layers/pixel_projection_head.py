# Copyright (c) mmcast contributors. All rights reserved.
"""Per-pixel projection head of CAST's pixel-wise contrastive loss."""
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor


@MODELS.register_module()
class PixelProjectionHead(BaseModule):
    """An MLP applied to every pixel (1x1 convolutions), L2-normalised.

    The authors' head is 768 -> 128 -> 128 -> 128 without bias, ReLU between
    the layers and none after the last one.

    Args:
        in_channels (int): Channels of the input feature map.
        hidden_channels (int): Channels of the hidden layers. Defaults to 128.
        out_channels (int): Embedding dimension D. Defaults to 128.
        num_layers (int): Number of 1x1 convolutions. Defaults to 3.
        bias (bool): Whether the convolutions have a bias. Defaults to False.
        eps (float): Epsilon of the L2 normalisation. Defaults to 1e-6.
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 hidden_channels: int = 128,
                 out_channels: int = 128,
                 num_layers: int = 3,
                 bias: bool = False,
                 eps: float = 1e-6,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}')
        channels = [in_channels
                    ] + [hidden_channels] * (num_layers - 1) + [out_channels]
        layers = []
        for i in range(num_layers):
            if i > 0:
                layers.append(nn.ReLU(inplace=True))
            layers.append(
                nn.Conv2d(channels[i], channels[i + 1], 1, bias=bias))
        self.mlp = nn.Sequential(*layers)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Project a feature map.

        Args:
            x (Tensor): (B, in_channels, h, w) features.

        Returns:
            Tensor: (B, out_channels, h, w) embeddings, unit L2 norm along
            the channels.
        """
        return F.normalize(self.mlp(x), dim=1, eps=self.eps)
