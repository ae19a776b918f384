# Copyright (c) mmcast contributors. All rights reserved.
"""Pixel decoders for Mask2Former on a 4-level backbone pyramid.

Both classes follow the interface that mmdet's :class:`Mask2FormerHead`
expects from ``pixel_decoder``:

* the head builds them with ``in_channels``, ``feat_channels`` and
  ``out_channels`` injected, plus whatever the config gives;
* ``forward(feats)`` takes the backbone maps ordered high -> low resolution
  and returns ``(mask_features, multi_scale_memorys)``: ``mask_features``
  ``(B, out_channels, H1, W1)`` at the finest level and
  ``multi_scale_memorys`` a list of ``num_outs`` maps with ``feat_channels``
  channels ordered LOW -> HIGH resolution (coarsest first);
* ``init_weights()`` is called by ``Mask2FormerHead.init_weights``.

``Mask2FormerHead.__init__`` asserts
``pixel_decoder.encoder.layer_cfg.self_attn_cfg.num_levels ==
num_transformer_feat_level`` (it assumes MSDeformAttnPixelDecoder), so
configs must carry the stub
``encoder=dict(layer_cfg=dict(self_attn_cfg=dict(num_levels=3)))``; these
decoders have no transformer encoder and only check that ``num_levels``
equals ``num_outs``.
"""
from typing import List, Optional, Sequence, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule, ModuleList, caffe2_xavier_init
from torch import Tensor

from mmdet.models.layers.pixel_decoder import PixelDecoder
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig


def _check_encoder_stub(encoder: OptConfigType, num_outs: int) -> None:
    if encoder is None:
        return
    try:
        num_levels = encoder['layer_cfg']['self_attn_cfg']['num_levels']
    except (KeyError, TypeError):
        return
    assert num_levels == num_outs, \
        f'encoder stub num_levels ({num_levels}) != num_outs ({num_outs})'


class ResidualConvUnit(BaseModule):
    """DPT / RefineNet pre-activation residual conv unit.

    ``x + conv2(act(conv1(act(x))))`` with 3x3 convs; with ``norm_cfg=None``
    the convs have biases (DPT ``bn=False``).
    """

    def __init__(self,
                 channels: int,
                 act_cfg: ConfigType = dict(type='ReLU'),
                 norm_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        # inplace=False: the first activation acts on the residual input.
        self.conv1 = ConvModule(
            channels,
            channels,
            3,
            padding=1,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            inplace=False,
            order=('act', 'conv', 'norm'))
        self.conv2 = ConvModule(
            channels,
            channels,
            3,
            padding=1,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            inplace=False,
            order=('act', 'conv', 'norm'))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.conv1(x))


class FeatureFusionBlock(BaseModule):
    """DPT / RefineNet feature fusion block, output at the skip's resolution.

    ``project(rcu2(rcu1(skip) + up(coarser)))`` where ``up`` is bilinear
    resizing to the skip's size (x2 in a regular pyramid). DPT applies the
    x2 upsampling at the end of the *previous* block and the 1x1 ``project``
    after it; both are linear so the two orders are the same function.
    The coarsest block has no ``coarser`` input and no ``rcu1`` (DPT's
    ``refinenet4`` never uses its first unit).
    """

    def __init__(self,
                 channels: int,
                 with_skip_unit: bool = True,
                 act_cfg: ConfigType = dict(type='ReLU'),
                 norm_cfg: OptConfigType = None,
                 align_corners: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.align_corners = align_corners
        self.res_conv_unit1 = ResidualConvUnit(
            channels, act_cfg, norm_cfg) if with_skip_unit else None
        self.res_conv_unit2 = ResidualConvUnit(channels, act_cfg, norm_cfg)
        self.project = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, skip: Tensor, coarser: Optional[Tensor] = None) -> Tensor:
        out = skip
        if self.res_conv_unit1 is not None:
            out = self.res_conv_unit1(out)
        if coarser is not None:
            out = out + F.interpolate(
                coarser,
                size=out.shape[-2:],
                mode='bilinear',
                align_corners=self.align_corners)
        out = self.res_conv_unit2(out)
        return self.project(out)


@MODELS.register_module()
class DPTPixelDecoder(BaseModule):
    """DPT pixel decoder (RefineNet fusion) for Mask2Former.

    For the CAST student (DINOv2-S reassemble outputs at strides 3.5, 7, 14,
    28 with 96/192/384/768 channels, ``feat_channels=out_channels=384``):

    1. ``convs[i]``: 3x3 conv (no bias, as DPT's ``layerN_rn``) of each level
       to ``feat_channels``;
    2. ``fusion_blocks``: coarsest -> finest, ``fused_28 = F(p_28)``,
       ``fused_14 = F(p_14, fused_28)``, ``fused_7``, ``fused_3.5``;
    3. ``multi_scale_memorys = [fused_28, fused_14, fused_7]`` (the
       ``num_outs`` coarsest, low -> high resolution), each
       ``(B, feat_channels, H/s, W/s)``;
    4. ``mask_features = mask_feature(fused_3.5)``: 1x1 conv (as in
       MSDeformAttnPixelDecoder) to ``(B, out_channels, H/3.5, W/3.5)``.

    Sizes need not be exact multiples: each fusion upsamples to the next
    finer map's actual size.

    Args:
        in_channels (Sequence[int]): Channels of the backbone maps, high ->
            low resolution.
        strides (Sequence[float]): Their strides; bookkeeping only (the
            fusion resizes to the next map's size), may be non-integer.
        feat_channels (int): Width of the fusion path / memories.
        out_channels (int): Width of ``mask_features``.
        num_outs (int): Number of memories (Mask2Former's
            ``num_transformer_feat_level``).
        proj_kernel_size (int): Kernel of the input projections (DPT: 3).
        mask_kernel_size (int): Kernel of the mask-feature conv.
        norm_cfg (dict, optional): Norm in the residual units (DPT: None).
        act_cfg (dict): Activation in the residual units.
        align_corners (bool): Bilinear upsampling mode (DPT: True).
        encoder (dict, optional): Only the Mask2FormerHead assertion stub,
            see the module docstring.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (96, 192, 384, 768),
                 strides: Sequence[float] = (3.5, 7, 14, 28),
                 feat_channels: int = 384,
                 out_channels: int = 384,
                 num_outs: int = 3,
                 proj_kernel_size: int = 3,
                 mask_kernel_size: int = 1,
                 norm_cfg: OptConfigType = None,
                 act_cfg: ConfigType = dict(type='ReLU'),
                 align_corners: bool = True,
                 encoder: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = list(in_channels)
        self.strides = list(strides)
        self.num_inputs = len(in_channels)
        assert len(self.strides) == self.num_inputs
        assert 1 <= num_outs < self.num_inputs, \
            'num_outs must leave the finest level for the mask features'
        _check_encoder_stub(encoder, num_outs)
        self.num_outs = num_outs
        self.feat_channels = feat_channels
        self.out_channels = out_channels
        self.convs = ModuleList([
            nn.Conv2d(
                c,
                feat_channels,
                kernel_size=proj_kernel_size,
                padding=proj_kernel_size // 2,
                bias=False) for c in in_channels
        ])
        # fusion_blocks[0] works on the coarsest level
        self.fusion_blocks = ModuleList([
            FeatureFusionBlock(
                feat_channels,
                with_skip_unit=i > 0,
                act_cfg=act_cfg,
                norm_cfg=norm_cfg,
                align_corners=align_corners) for i in range(self.num_inputs)
        ])
        self.mask_feature = nn.Conv2d(
            feat_channels,
            out_channels,
            kernel_size=mask_kernel_size,
            padding=mask_kernel_size // 2)

    def init_weights(self) -> None:
        super().init_weights()
        caffe2_xavier_init(self.mask_feature, bias=0)

    def forward(self, feats: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        """
        Args:
            feats (list[Tensor]): ``num_inputs`` maps, high -> low
                resolution, ``feats[i]`` of shape (B, in_channels[i], h_i,
                w_i).

        Returns:
            tuple: ``mask_features`` (B, out_channels, h_0, w_0) and
            ``multi_scale_memorys``, ``num_outs`` maps (B, feat_channels,
            h_i, w_i) for i = L-1, L-2, ... (low -> high resolution).
        """
        assert len(feats) == self.num_inputs
        fused = []  # coarse -> fine
        y = None
        for k, i in enumerate(range(self.num_inputs - 1, -1, -1)):
            y = self.fusion_blocks[k](self.convs[i](feats[i]), y)
            fused.append(y)
        mask_features = self.mask_feature(fused[-1])
        return mask_features, fused[:self.num_outs]


@MODELS.register_module()
class MultiLevelFPNPixelDecoder(PixelDecoder):
    """mmdet's FPN-like :class:`PixelDecoder` returning multi-level memories.

    The DPT-vs-FPN ablation decoder (Mask2Former's "FPN" pixel decoder):
    top-down path ``y = last_feat_conv(C_L)``, then for each finer level
    ``y = output_conv(lateral(C_i) + up(y))``. mmdet's class returns only
    the coarsest backbone map as memory; this one returns the ``num_outs``
    coarsest top-down outputs (low -> high resolution, ``feat_channels``)
    as Mask2Former needs, and ``mask_feature`` (3x3 conv) of the finest.

    Accepts (and ignores) ``strides`` and the ``encoder`` assertion stub.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 feat_channels: int,
                 out_channels: int,
                 num_outs: int = 3,
                 strides: Optional[Sequence[float]] = None,
                 norm_cfg: ConfigType = dict(type='GN', num_groups=32),
                 act_cfg: ConfigType = dict(type='ReLU'),
                 encoder: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            in_channels=in_channels,
            feat_channels=feat_channels,
            out_channels=out_channels,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg)
        assert 1 <= num_outs < self.num_inputs
        _check_encoder_stub(encoder, num_outs)
        self.num_outs = num_outs
        self.strides = None if strides is None else list(strides)

    def init_weights(self) -> None:
        # mmdet's version skips the last lateral/output conv (off by one)
        for i in range(self.num_inputs - 1):
            caffe2_xavier_init(self.lateral_convs[i].conv, bias=0)
            caffe2_xavier_init(self.output_convs[i].conv, bias=0)
        caffe2_xavier_init(self.mask_feature, bias=0)
        caffe2_xavier_init(self.last_feat_conv.conv, bias=0)

    def forward(self,
                feats: List[Tensor],
                batch_img_metas: Optional[List[dict]] = None
                ) -> Tuple[Tensor, List[Tensor]]:
        y = self.last_feat_conv(feats[-1])
        outs = [y]
        for i in range(self.num_inputs - 2, -1, -1):
            cur = self.lateral_convs[i](feats[i])
            y = cur + F.interpolate(y, size=cur.shape[-2:], mode='nearest')
            y = self.output_convs[i](y)
            outs.append(y)
        return self.mask_feature(y), outs[:self.num_outs]
