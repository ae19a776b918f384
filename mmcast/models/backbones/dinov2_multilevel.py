# Copyright (c) mmcast contributors. All rights reserved.
"""DINOv2 ViT backbone with a DPT-style multi-level read-out.

The CAST student (spec "Models") reads the patch tokens of four ViT blocks
(0-based 2, 5, 8, 11 of ViT-S/14), projects each with a 1x1 conv to
96/192/384/768 channels and resizes them x4, x2, x1, x0.5 -- the DPT
"reassemble" stage (Ranftl et al., ICCV 2021) -- so that Mask2Former gets a
4-level pyramid at strides 3.5, 7, 14 and 28 (patch 14 / 4, / 2, x1, x2).

The class *is* mmpretrain's :class:`VisionTransformer` (subclass, not a
copy), so its state-dict names are mmpretrain's (``cls_token``,
``pos_embed``, ``patch_embed.projection.*``, ``layers.{i}.ln1.*``,
``layers.{i}.attn.qkv.*``, ``layers.{i}.attn.gamma1.weight``,
``layers.{i}.ffn.layers.0.0.*``, ``layers.{i}.ffn.gamma2.weight``,
``ln1.*``). Therefore

* mmpretrain's own DINOv2 checkpoint
  (``vit-small-p14_dinov2-pre_3rdparty_20230426-5641ca5a.pth``, keys
  ``backbone.*``) loads with
  ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``;
* the official facebookresearch/dinov2 checkpoint
  (``dinov2_vits14_pretrain.pth``) loads after
  ``tools/model_converters/dinov2_to_mmcast.py`` with
  ``init_cfg=dict(type='Pretrained', checkpoint=converted)``.

The DPT read-out modules (``readout_projects``, ``reassemble_projects``,
``reassemble_resizes``) are new and keep their random init in both cases.
Note for optimizer settings: they live under ``backbone.``, so a
``custom_keys={'backbone': dict(lr_mult=0.1)}`` also slows them down; add
e.g. ``'backbone.reassemble': dict(lr_mult=1.0)`` and
``'backbone.readout': dict(lr_mult=1.0)`` (mmengine matches the longest key
first) to train them at the head's rate.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor

from mmdet.registry import MODELS


def _build_resize(channels: int, factor: float) -> nn.Module:
    """DPT resize layer for one level.

    ``factor > 1`` (integer): transposed conv, kernel = stride = factor
    (DPT uses 4x4/s4 and 2x2/s2); ``factor == 1``: identity;
    ``factor < 1`` (1/factor integer): 3x3 conv with stride 1/factor,
    padding 1 (DPT's x0.5 layer). An odd input size n gives ceil(n / s).
    """
    if factor == 1:
        return nn.Identity()
    if factor > 1:
        k = int(round(factor))
        assert abs(k - factor) < 1e-6, f'upsampling factor {factor} must be ' \
            'an integer'
        return nn.ConvTranspose2d(channels, channels, kernel_size=k, stride=k)
    s = int(round(1. / factor))
    assert abs(s - 1. / factor) < 1e-6, f'downsampling factor {factor} must' \
        ' be 1/integer'
    return nn.Conv2d(channels, channels, kernel_size=3, stride=s, padding=1)


class DPTReassembleMixin:
    """DPT read-out and reassemble of the ViT multi-level backbones.

    Shared by :class:`DINOv2MultiLevel` and ``DINOv3MultiLevel``. The host
    class calls :meth:`_init_reassemble` after building its ViT and provides
    ``patch_size`` (int) and ``num_extra_tokens`` (the class token first,
    then any register tokens, before the patch tokens). Builds
    ``readout_projects`` (``readout_type='project'`` only),
    ``reassemble_projects`` and ``reassemble_resizes``.
    """

    READOUT_TYPES = ('ignore', 'add', 'project')

    def _init_reassemble(self, embed_dims: int, out_channels: Sequence[int],
                         resize_factors: Sequence[float],
                         readout_type: str) -> None:
        """Build the read-out modules for ``len(out_channels)`` levels."""
        self.out_channels = tuple(out_channels)
        self.resize_factors = tuple(float(f) for f in resize_factors)
        self.strides = tuple(self.patch_size / f for f in self.resize_factors)
        self.readout_type = readout_type

        C = embed_dims
        if readout_type == 'project':
            self.readout_projects = nn.ModuleList([
                nn.Sequential(nn.Linear(2 * C, C), nn.GELU())
                for _ in self.out_channels
            ])
        self.reassemble_projects = nn.ModuleList(
            [nn.Conv2d(C, c, kernel_size=1) for c in self.out_channels])
        self.reassemble_resizes = nn.ModuleList([
            _build_resize(c, f)
            for c, f in zip(self.out_channels, self.resize_factors)
        ])

    def pad_to_patch(self, x: Tensor) -> Tensor:
        """Zero-pad (bottom/right) H and W up to a multiple of the patch."""
        H, W = x.shape[-2:]
        pad_h = (-H) % self.patch_size
        pad_w = (-W) % self.patch_size
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return x

    def _reassemble(self, level: int, x: Tensor,
                    hw: Tuple[int, int]) -> Tensor:
        """Tokens (B, E + h*w, C) -> (B, out_channels[level], h*f, w*f).

        ``E = num_extra_tokens``; the class token is ``x[:, 0]`` and any
        register tokens after it are dropped.
        """
        cls_token, patch = x[:, :1], x[:, self.num_extra_tokens:]
        if self.readout_type == 'add':
            patch = patch + cls_token
        elif self.readout_type == 'project':
            patch = self.readout_projects[level](
                torch.cat([patch, cls_token.expand_as(patch)], dim=-1))
        B = patch.shape[0]
        feat = patch.transpose(1, 2).reshape(B, -1, *hw)
        feat = self.reassemble_projects[level](feat)
        return self.reassemble_resizes[level](feat)


@MODELS.register_module()
class DINOv2MultiLevel(VisionTransformer, DPTReassembleMixin):
    """DINOv2 ViT with a multi-level DPT reassemble read-out.

    Args:
        arch (str | dict): mmpretrain ViT arch. ``'dinov2-small'`` (384-d,
            12 layers, 6 heads, FFN 1536) for the paper's ViT-S/14, or a
            dict with ``embed_dims``, ``num_layers``, ``num_heads``,
            ``feedforward_channels`` (toy variants).
        img_size (int | tuple): Size whose patch grid defines the stored
            ``pos_embed``; 518 (37x37 patches + cls) matches DINOv2
            checkpoints. Any input size works: ``pos_embed`` is resized
            (``interpolate_mode``, bicubic, to the target size; the official
            DINOv2 code uses a scale factor with a 0.1 offset, which differs
            only marginally) to the actual patch grid in every forward.
        patch_size (int): Patch size (14 for DINOv2).
        out_indices (Sequence[int]): 0-based blocks read out, ascending
            (``(2, 5, 8, 11)`` for ViT-S). Negative values count from the
            end.
        out_channels (Sequence[int]): 1x1-conv projection width per level
            (``(96, 192, 384, 768)``).
        resize_factors (Sequence[float]): Resize per level relative to the
            patch grid (``(4, 2, 1, 0.5)``): strides ``patch / factor``,
            i.e. 3.5, 7, 14, 28 for patch 14.
        readout_type (str): What to do with the class token (DPT):
            ``'ignore'`` (drop it), ``'add'`` (add it to every patch token)
            or ``'project'`` (concat to every patch token, Linear(2C, C) +
            GELU, as DPT / DINOv2's DPT heads). Defaults to ``'project'``.
        norm_intermediate (bool): Apply the final LayerNorm (``ln1``) to
            every read-out block, as DINOv2's
            ``get_intermediate_layers(norm=True)`` used by its dense heads.
            If False only the last block is normalised (mmpretrain
            behaviour). Defaults to True.
        layer_scale_init_value (float): LayerScale init (DINOv2: 1e-5).
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        frozen_stages (int): Freeze patch embed + the first ``n`` blocks.
        interpolate_mode (str): ``pos_embed`` resizing mode.
        norm_cfg (dict): ViT norm layers (LN, eps 1e-6 as DINOv2).
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained',
            checkpoint=..., prefix='backbone.')`` for mmpretrain checkpoints.

    Shapes:
        Input ``(B, 3, H, W)`` is zero-padded (bottom/right) to
        ``Hp = ceil(H / patch) * patch``, ``Wp`` likewise (so the patch grid
        is ``h = Hp / patch``, ``w = Wp / patch``). Output is a tuple of
        ``len(out_indices)`` maps ``(B, out_channels[i], h * f_i, w * f_i)``
        (``ceil`` for ``f_i < 1``), ordered high -> low resolution, i.e.
        strides ``(3.5, 7, 14, 28)`` w.r.t. the padded input for ViT-S/14.
        Pad the batch to a multiple of ``patch / min(resize_factors)`` (28)
        in the data preprocessor so that no internal padding happens and
        every level covers exactly ``batch_input_shape / stride``; Mask2Former
        relates its mask predictions to ``batch_input_shape`` by rescaling,
        so internal padding would shift masks by up to ``patch - 1`` px.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'dinov2-small',
                 img_size: Union[int, Tuple[int, int]] = 518,
                 patch_size: int = 14,
                 out_indices: Sequence[int] = (2, 5, 8, 11),
                 out_channels: Sequence[int] = (96, 192, 384, 768),
                 resize_factors: Sequence[float] = (4, 2, 1, 0.5),
                 readout_type: str = 'project',
                 norm_intermediate: bool = True,
                 layer_scale_init_value: float = 1e-5,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 qkv_bias: bool = True,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 frozen_stages: int = -1,
                 interpolate_mode: str = 'bicubic',
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        out_indices = list(out_indices)
        assert len(out_indices) == len(out_channels) == len(resize_factors), \
            'out_indices, out_channels and resize_factors must have the ' \
            'same length'
        assert readout_type in self.READOUT_TYPES, \
            f'readout_type must be one of {self.READOUT_TYPES}'
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            out_indices=out_indices,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            qkv_bias=qkv_bias,
            norm_cfg=norm_cfg,
            final_norm=True,
            out_type='featmap',
            with_cls_token=True,
            frozen_stages=frozen_stages,
            interpolate_mode=interpolate_mode,
            layer_scale_init_value=layer_scale_init_value,
            init_cfg=init_cfg)
        assert list(self.out_indices) == sorted(set(self.out_indices)), \
            f'out_indices must be strictly ascending, got {self.out_indices}'
        self.patch_size = patch_size
        self.norm_intermediate = norm_intermediate
        self._init_reassemble(self.embed_dims, out_channels, resize_factors,
                              readout_type)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.frozen_stages > 0:
            self._freeze_stages()
        return self

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W) -> tuple of maps at strides ``self.strides``."""
        x = self.pad_to_patch(x)
        B = x.shape[0]
        x, patch_resolution = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        x = self.drop_after_pos(x)
        x = self.pre_norm(x)

        outs = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.out_indices:
                y = self.ln1(x) if (self.norm_intermediate
                                    or i == last) else x
                outs.append(
                    self._reassemble(len(outs), y, patch_resolution))
        return tuple(outs)
