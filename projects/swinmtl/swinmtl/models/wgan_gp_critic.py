# Copyright (c) mmcast contributors. All rights reserved.
"""PatchGAN critic and WGAN-GP gradient penalty of SwinMTL."""
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS


@MODELS.register_module()
class PatchGANCritic(BaseModule):
    """PatchGAN-style WGAN critic over ``[depth, segmentation]`` maps.

    Convolutions 4×4 to ``channels`` (64/128/256/512) with ``strides``
    (2/2/2/1), LeakyReLU 0.2, then a 4×4 convolution to one channel: one
    unbounded score per overlapping patch (70×70 pixels with the defaults,
    pix2pix's PatchGAN). That last convolution has no bias: the Wasserstein
    loss ``E[C(fake)] − E[C(real)]`` and the gradient penalty are blind to
    a constant offset of the scores, so a bias would get no gradient (only
    rounding noise, which Adam would turn into full-size steps).
    No normalisation by default: the gradient penalty
    is defined per sample, which batch statistics would couple (Gulrajani
    et al. 2017 recommend no BatchNorm in the critic).

    Args:
        in_channels (int): Input channels: 1 (normalised depth) + number of
            classes (segmentation probabilities).
        channels (Sequence[int]): Channels of the hidden convolutions.
            Defaults to ``(64, 128, 256, 512)``.
        strides (Sequence[int]): Their strides. Defaults to ``(2, 2, 2, 1)``.
        norm_cfg (dict, optional): Norm layer after every hidden
            convolution except the first; e.g. ``dict(type='IN')``.
            Defaults to None.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 channels: Sequence[int] = (64, 128, 256, 512),
                 strides: Sequence[int] = (2, 2, 2, 1),
                 norm_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(channels) != len(strides):
            raise ValueError(f'channels {channels} and strides {strides} '
                             'must have one length')
        layers = []
        for i, (out_channels, stride) in enumerate(zip(channels, strides)):
            layers.append(
                ConvModule(
                    in_channels,
                    out_channels,
                    kernel_size=4,
                    stride=stride,
                    padding=1,
                    norm_cfg=norm_cfg if i > 0 else None,
                    act_cfg=dict(type='LeakyReLU', negative_slope=0.2),
                    inplace=False))
            in_channels = out_channels
        layers.append(
            nn.Conv2d(in_channels, 1, 4, stride=1, padding=1, bias=False))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Score the patches of a batch.

        Args:
            x (Tensor): ``(B, in_channels, H, W)``.

        Returns:
            Tensor: Patch scores ``(B, 1, h, w)``.
        """
        return self.layers(x)


def critic_input_gradient(critic: Callable[[Tensor], Tensor],
                          x: Tensor,
                          loss_scale: float = 1.0) -> Tensor:
    """``∇ₓ C(x)`` of the per-sample scores, kept in the graph.

    ``C(x)`` is the critic's score of a sample: the mean of its patch scores
    (what the Wasserstein loss averages), taken in float32. Under fp16
    mixed precision the critic's backward runs in half precision, where the
    gradients of a sample of many patches (each ~1/N of the score's) fall
    into fp16's subnormal range and lose their precision, or underflow to
    0. ``loss_scale`` (the AMP loss scaler's current scale) multiplies the
    scores before differentiating and is divided out of the gradient
    afterwards, as in PyTorch's AMP recipe for gradient penalties; in full
    precision it changes nothing.

    Args:
        critic (Callable): Maps ``(B, ...)`` to scores ``(B, ...)``.
        x (Tensor): Samples ``(B, ...)`` that require grad.
        loss_scale (float): Scale of the backward pass. Defaults to 1.

    Returns:
        Tensor: float32 gradient, the shape of ``x``.
    """
    scores = critic(x).float().reshape(x.size(0), -1).mean(dim=1)
    scaled_grad, = torch.autograd.grad(
        scores.sum() * loss_scale, x, create_graph=True)
    return scaled_grad.float() / loss_scale


def gradient_penalty(critic: Callable[[Tensor], Tensor],
                     real: Tensor,
                     fake: Tensor,
                     loss_scale: float = 1.0) -> Tensor:
    """WGAN-GP gradient penalty ``E[(‖∇ₓ C(x)‖₂ − 1)²]``.

    ``x = α·real + (1 − α)·fake`` with one ``α ~ U(0, 1)`` per sample, and
    ``‖∇ₓ C(x)‖₂`` the norm of :func:`critic_input_gradient` over the whole
    sample, as in Gulrajani et al. (2017). The graph is kept so that the
    penalty trains the critic.

    Args:
        critic (Callable): Maps ``(B, ...)`` to scores ``(B, ...)``.
        real (Tensor): Real samples ``(B, ...)``.
        fake (Tensor): Generated samples, same shape, detached.
        loss_scale (float): The AMP loss scaler's scale (see
            :func:`critic_input_gradient`). Defaults to 1.

    Returns:
        Tensor: Scalar penalty.
    """
    if real.shape != fake.shape:
        raise ValueError(f'real {tuple(real.shape)} and fake '
                         f'{tuple(fake.shape)} must have one shape')
    alpha = torch.rand((real.size(0), ) + (1, ) * (real.dim() - 1),
                       device=real.device,
                       dtype=real.dtype)
    x = (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)
    grad = critic_input_gradient(critic, x, loss_scale)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
