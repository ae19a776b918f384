# Copyright (c) mmcast contributors. All rights reserved.
"""Mask2Former's MSDeformAttn pixel decoder with its level shapes as Python
integers, for the static predict (:mod:`mmcast.deploy.static_predict`).

MMDetection's ``MSDeformAttnPixelDecoder`` keeps the feature levels' (h, w)
in a tensor (``spatial_shapes``) and MMCV's ``MultiScaleDeformableAttention``
reads it back on the host (``value.split`` by the levels' sizes, the shape
check, ``level_start_index`` for the CUDA kernel): ``torch.export`` and
``torch.compile(fullgraph=True)`` stop there. At a fixed input size the
shapes are those of the feature maps, plain integers under tracing, so
:class:`StaticMSDeformAttnPixelDecoder` passes them on as a tuple and
:class:`StaticMultiScaleDeformableAttention` samples with MMCV's
``grid_sample`` code on those integers. In float32 both give the stock
modules' outputs on the CPU (the same operations); on CUDA the stock
attention runs MMCV's kernel instead, which rounds differently.
:func:`use_static_deform_attn` switches a model's modules in place, with
the same parameters.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttention, multi_scale_deformable_attn_pytorch)
from mmdet.models.layers import MSDeformAttnPixelDecoder
from torch import Tensor, nn

from mmcast.utils.module_switch import switch_modules

LevelShapes = Tuple[Tuple[int, int], ...]


class StaticMultiScaleDeformableAttention(MultiScaleDeformableAttention):
    """MMCV's multi-scale deformable attention (``batch_first``, 2-d
    reference points) on level shapes given as Python integers, sampled
    with ``grid_sample`` on every device: no value is read back from the
    device."""

    def forward(self,
                query: Tensor,
                key: Optional[Tensor] = None,
                value: Optional[Tensor] = None,
                identity: Optional[Tensor] = None,
                query_pos: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None,
                reference_points: Optional[Tensor] = None,
                spatial_shapes: LevelShapes = (),
                **kwargs) -> Tensor:
        """Attend from each query to ``num_points`` points around its
        reference point on every level.

        Args:
            query (Tensor): (B, N_q, C).
            key (Tensor, optional): Unused: the values are sampled where
                the query points, with no keys.
            value (Tensor, optional): (B, N_v, C), N_v = Σ h_l × w_l, the
                levels' cells concatenated; defaults to ``query``.
            identity (Tensor, optional): (B, N_q, C) added to the output;
                defaults to ``query``.
            query_pos (Tensor, optional): (B, N_q, C) added to ``query``.
            key_padding_mask (Tensor, optional): bool (B, N_v), True where
                ``value`` is zeroed.
            reference_points (Tensor): (B, N_q, L, 2) normalised (x, y).
            spatial_shapes (tuple[tuple[int, int]]): The L levels' (h, w).
            **kwargs: The encoder layer's ``key_pos``,
                ``level_start_index`` and ``valid_ratios``: unused.

        Returns:
            Tensor: (B, N_q, C).
        """
        if value is None:
            value = query
        if identity is None:
            identity = query
        if query_pos is not None:
            query = query + query_pos
        batch_size, num_query, _ = query.shape
        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(batch_size, value.shape[1], self.num_heads, -1)
        offsets = self.sampling_offsets(query).view(
            batch_size, num_query, self.num_heads, self.num_levels,
            self.num_points, 2)
        weights = self.attention_weights(query).view(
            batch_size, num_query, self.num_heads,
            self.num_levels * self.num_points).softmax(-1).view(
                batch_size, num_query, self.num_heads, self.num_levels,
                self.num_points)
        normalizer = offsets.new_tensor([(w, h) for h, w in spatial_shapes])
        locations = reference_points[:, :, None, :, None, :] \
            + offsets / normalizer[None, None, None, :, None, :]
        output = multi_scale_deformable_attn_pytorch(value, spatial_shapes,
                                                     locations, weights)
        return self.dropout(self.output_proj(output)) + identity


class StaticMSDeformAttnPixelDecoder(MSDeformAttnPixelDecoder):
    """MMDetection's ``MSDeformAttnPixelDecoder`` that hands its encoder
    the levels' shapes as Python integers (the feature maps' own) and no
    padding mask (Mask2Former masks no padding: the stock one is all
    False); its encoder's attention must be
    :class:`StaticMultiScaleDeformableAttention`."""

    def forward(self, feats: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        """
        Args:
            feats (list[Tensor]): The backbone's levels, (B, c_i, h_i, w_i),
                from high to low resolution.

        Returns:
            tuple: ``mask_feature`` (B, C_out, h_0, w_0) and the
            ``num_outs`` multi-scale features (B, C, h, w), from low to
            high resolution.
        """
        batch_size = feats[0].shape[0]
        levels = [self.num_input_levels - i - 1
                  for i in range(self.num_encoder_levels)]
        shapes = tuple((int(feats[level].shape[-2]),
                        int(feats[level].shape[-1])) for level in levels)
        queries, query_pos, points = [], [], []
        for i, (level, (h, w)) in enumerate(zip(levels, shapes)):
            feat = feats[level]
            no_padding = feat.new_zeros((batch_size, h, w), dtype=torch.bool)
            pos_embed = self.postional_encoding(no_padding) + \
                self.level_encoding.weight[i].view(1, -1, 1, 1)
            stride = self.strides[level]
            grid = self.point_generator.single_level_grid_priors(
                (h, w), level, device=feat.device)  # (h × w, 2) in pixels
            points.append(grid / grid.new_tensor((w * stride, h * stride)))
            queries.append(self.input_convs[i](feat).flatten(2).transpose(
                1, 2))
            query_pos.append(pos_embed.flatten(2).transpose(1, 2))
        reference_points = torch.cat(points)[None, :, None].expand(
            batch_size, -1, self.num_encoder_levels, -1)
        memory = self.encoder(
            query=torch.cat(queries, dim=1),
            query_pos=torch.cat(query_pos, dim=1),
            key_padding_mask=None,
            spatial_shapes=shapes,
            level_start_index=None,
            valid_ratios=None,
            reference_points=reference_points).transpose(1, 2)
        outs = [
            x.reshape(batch_size, -1, h, w) for x, (h, w) in zip(
                memory.split([h * w for h, w in shapes], dim=-1), shapes)
        ]
        for i in range(self.num_input_levels - self.num_encoder_levels - 1,
                       -1, -1):
            lateral = self.lateral_convs[i](feats[i])
            outs.append(self.output_convs[i](lateral + F.interpolate(
                outs[-1], size=lateral.shape[-2:], mode='bilinear',
                align_corners=False)))
        return self.mask_feature(outs[-1]), outs[:self.num_outs]


def use_static_deform_attn(model: nn.Module) -> int:
    """Switch every ``MSDeformAttnPixelDecoder`` of ``model`` and the
    deformable attention of its encoder (in place, same parameters) to
    :class:`StaticMSDeformAttnPixelDecoder` and
    :class:`StaticMultiScaleDeformableAttention`.

    Returns:
        int: The number of pixel decoders switched.
    """
    decoders = switch_modules(model, MSDeformAttnPixelDecoder,
                              StaticMSDeformAttnPixelDecoder)
    for decoder in decoders:
        switch_modules(decoder.encoder, MultiScaleDeformableAttention,
                       StaticMultiScaleDeformableAttention)
    return len(decoders)
