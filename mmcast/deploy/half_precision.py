# Copyright (c) mmcast contributors. All rights reserved.
"""A network in half precision end to end, its numerically fragile parts
kept in float32 (:func:`cast_network`): what the static predict, the
``.pt2`` package and the fp16 ONNX export run."""
import torch
import torch.nn.functional as F
from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttention
from timm.layers import LayerNorm as TimmLayerNorm
from timm.layers import LayerNorm2d as TimmLayerNorm2d
from torch import Tensor, nn


class Float32LayerNorm(nn.LayerNorm):
    """``LayerNorm`` computed in float32 (weights too) whatever the input's
    precision; the output has the input's dtype."""

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.float(), self.normalized_shape, self.weight,
                            self.bias, self.eps).to(x.dtype)


class Float32LayerNorm2d(nn.LayerNorm):
    """timm's channels-first ``LayerNorm2d`` (over ``C`` of ``(B, C, H,
    W)``) computed in float32 (weights too); output in the input's
    dtype."""

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1).float(),
                         self.normalized_shape, self.weight, self.bias,
                         self.eps).to(x.dtype)
        return x.permute(0, 3, 1, 2)


class Float32GroupNorm(nn.GroupNorm):
    """``GroupNorm`` computed in float32 (weights too); output in the
    input's dtype."""

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight,
                            self.bias, self.eps).to(x.dtype)


# Norms computed in float32 in a half-precision network, by exact class
# (a subclass may normalise other dimensions): torch's and timm's
# LayerNorm, timm's channels-first LayerNorm2d, torch's GroupNorm.
FLOAT32_NORMS = {
    nn.LayerNorm: Float32LayerNorm,
    TimmLayerNorm: Float32LayerNorm,
    TimmLayerNorm2d: Float32LayerNorm2d,
    nn.GroupNorm: Float32GroupNorm,
}


def _output_to(dtype: torch.dtype):
    """A forward hook casting a floating-point output to ``dtype``."""

    def hook(module: nn.Module, args, output):
        if torch.is_tensor(output) and output.is_floating_point():
            return output.to(dtype)
        return output

    return hook


def _input_to(dtype: torch.dtype):
    """A forward pre-hook casting a module's one tensor input to
    ``dtype``."""

    def hook(module: nn.Module, args):
        return (args[0].to(dtype), )

    return hook


def cast_network(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast a network's weights to ``dtype`` for end-to-end half precision
    (in place).

    LayerNorm (torch's and timm's, timm's ``LayerNorm2d`` too) and
    GroupNorm keep float32 weights and compute in float32
    (:data:`FLOAT32_NORMS`): their variance overflows fp16 on large
    activations. Positional encodings, which build
    float32 tensors from coordinates, have their outputs cast to ``dtype``
    so that no float32 tensor promotes the half-precision path back. MMCV's
    deformable attention (the MSDeformAttn pixel decoder) samples in
    float32, as under autocast: its float32 reference points locate the
    samples to a fraction of a cell at any level size, and ``grid_sample``
    takes one dtype; its value projection's output is float32 and its
    output projection's input ``dtype``. With ``dtype=torch.float32`` the
    model is unchanged.

    Returns:
        nn.Module: The same model.
    """
    if dtype == torch.float32:
        return model.float()
    model.to(dtype)
    for module in model.modules():
        if type(module) in FLOAT32_NORMS:
            module.__class__ = FLOAT32_NORMS[type(module)]
            module.float()
        elif 'PositionalEncoding' in type(module).__name__:
            module.register_forward_hook(_output_to(dtype))
        elif isinstance(module, MultiScaleDeformableAttention):
            module.value_proj.register_forward_hook(
                _output_to(torch.float32))
            module.output_proj.register_forward_pre_hook(_input_to(dtype))
    return model
