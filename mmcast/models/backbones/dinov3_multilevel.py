# Copyright (c) mmcast contributors. All rights reserved.
"""DINOv3 ViT backbone (timm's definition) with a DPT multi-level read-out.

The DINOv3 counterpart of :class:`DINOv2MultiLevel`: the ViT is timm's
:class:`timm.models.eva.Eva` as built by ``timm.create_model`` for the
DINOv3 names (``vit_small_patch16_dinov3``: ViT-S/16, 21.6M parameters;
``vit_small_plus_patch16_dinov3``: ViT-S+/16 with a SwiGLU FFN, 28.7M),
i.e. patch 16, one class token followed by 4 register tokens, RoPE instead
of a position embedding (any patch grid, no resizing) and LayerScale. The
patch tokens of four blocks (0-based 2, 5, 8, 11) are reassembled DPT-style
exactly as in :class:`DINOv2MultiLevel` (shared
:class:`DPTReassembleMixin`): 1x1 projections to 96/192/384/768 channels,
resized x4, x2, x1, x0.5, i.e. strides 4, 8, 16 and 32 for patch 16. The
register tokens are dropped; the class token is used as ``readout_type``
says.

State-dict names are timm's under ``vit.`` (``vit.cls_token``,
``vit.reg_token``, ``vit.patch_embed.proj.*``, ``vit.blocks.{i}.norm1.*``,
``vit.blocks.{i}.attn.qkv.weight``, ``vit.blocks.{i}.gamma_1``,
``vit.blocks.{i}.mlp.fc1.*`` (S) or ``mlp.fc1_g/fc1_x.*`` (S+),
``vit.blocks.{i}.gamma_2``, ``vit.norm.*``) plus the new, randomly
initialised DPT modules (``readout_projects``, ``reassemble_projects``,
``reassemble_resizes``). Meta's released checkpoints
(``dinov3_vits16_pretrain_*.pth``, ``dinov3_vits16plus_pretrain_*.pth``)
and timm's own files load after ``tools/model_converters/
dinov3_to_mmcast.py`` with ``init_cfg=dict(type='Pretrained',
checkpoint=converted)``. As for DINOv2, the DPT modules live under
``backbone.``; the stage schedules train ``backbone.readout_projects`` and
``backbone.reassemble_*`` at the head's rate.
"""
from typing import List, Optional, Sequence, Tuple, Union

import timm
import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from timm.models.eva import Eva
from torch import Tensor

from .dinov2_multilevel import DPTReassembleMixin


def build_dinov3_vit(arch: str,
                     vit_cfg: Optional[dict] = None,
                     drop_path_rate: float = 0.) -> Eva:
    """A DINOv3-style timm ViT, randomly initialised, without a head.

    Args:
        arch (str): timm model name of a DINOv3 ViT, e.g.
            ``'vit_small_patch16_dinov3'``.
        vit_cfg (dict, optional): Overrides of the timm model's arguments
            (toy / test widths), e.g. ``dict(embed_dim=64, depth=4)``.
        drop_path_rate (float): Stochastic depth. Defaults to 0.

    Returns:
        Eva: The ViT (``dynamic_img_size``: any input size), with a class
        token and axial RoPE.
    """
    if not timm.is_model(arch):
        raise ValueError(f'arch {arch!r} is not a timm model name '
                         "(e.g. 'vit_small_patch16_dinov3')")
    if not timm.models.is_model_in_modules(arch, ['eva']):
        raise ValueError(f'arch {arch!r} is not a timm Eva ViT (the '
                         'class of the DINOv3 models)')
    vit = timm.create_model(
        arch,
        pretrained=False,
        num_classes=0,
        global_pool='',
        dynamic_img_size=True,
        drop_path_rate=drop_path_rate,
        **(vit_cfg or {}))
    if vit.cls_token is None or vit.rope is None or vit.rope_mixed:
        raise ValueError(
            f'arch {arch!r} is not a DINOv3-style timm ViT (Eva with a '
            'class token and axial RoPE)')
    return vit


@MODELS.register_module()
class DINOv3MultiLevel(BaseModule, DPTReassembleMixin):
    """DINOv3 ViT (timm) with a multi-level DPT reassemble read-out.

    Args:
        arch (str): timm model name of a DINOv3 ViT, e.g.
            ``'vit_small_patch16_dinov3'`` (S/16) or
            ``'vit_small_plus_patch16_dinov3'`` (S+/16). Built with
            ``pretrained=False`` (weights come from ``init_cfg``).
        vit_cfg (dict, optional): Overrides of the timm model's arguments
            (toy / test widths), e.g. ``dict(embed_dim=64, depth=4,
            num_heads=4, patch_size=8, init_values=0.1)``.
        out_indices (Sequence[int]): 0-based blocks read out, strictly
            ascending (``(2, 5, 8, 11)`` for ViT-S). Negative values count
            from the end.
        out_channels (Sequence[int]): 1x1-conv projection width per level
            (``(96, 192, 384, 768)``).
        resize_factors (Sequence[float]): Resize per level relative to the
            patch grid (``(4, 2, 1, 0.5)``): strides ``patch / factor``,
            i.e. 4, 8, 16, 32 for patch 16.
        readout_type (str): What to do with the class token (DPT):
            ``'ignore'``, ``'add'`` or ``'project'`` (concat + Linear(2C, C)
            + GELU). Register tokens are always dropped.
        norm_intermediate (bool): Apply the final LayerNorm (``vit.norm``)
            to every read-out block (DINOv3's dense heads do). If False only
            the last block is normalised. Defaults to True.
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        frozen_stages (int): Freeze patch embed, class / register tokens and
            the first ``n`` blocks (all blocks: the final norm too).
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained',
            checkpoint=...)`` of a converted checkpoint.

    Shapes:
        Input ``(B, 3, H, W)`` is zero-padded (bottom/right) to multiples of
        the patch (``h = ceil(H / patch)``, ``w = ceil(W / patch)``). Output
        is a tuple of ``len(out_indices)`` maps ``(B, out_channels[i],
        h * f_i, w * f_i)`` (``ceil`` for ``f_i < 1``), high -> low
        resolution. Pad the batch to a multiple of ``patch /
        min(resize_factors)`` (32) in the data preprocessor so that no
        internal padding happens (see :class:`DINOv2MultiLevel`).
    """

    def __init__(self,
                 arch: str = 'vit_small_patch16_dinov3',
                 vit_cfg: Optional[dict] = None,
                 out_indices: Sequence[int] = (2, 5, 8, 11),
                 out_channels: Sequence[int] = (96, 192, 384, 768),
                 resize_factors: Sequence[float] = (4, 2, 1, 0.5),
                 readout_type: str = 'project',
                 norm_intermediate: bool = True,
                 drop_path_rate: float = 0.,
                 frozen_stages: int = -1,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        assert len(out_indices) == len(out_channels) == len(resize_factors), \
            'out_indices, out_channels and resize_factors must have the ' \
            'same length'
        assert readout_type in self.READOUT_TYPES, \
            f'readout_type must be one of {self.READOUT_TYPES}'
        self.vit = build_dinov3_vit(arch, vit_cfg, drop_path_rate)
        vit = self.vit
        patch_h, patch_w = vit.patch_embed.patch_size
        assert patch_h == patch_w, f'square patches only, got {patch_h}x' \
            f'{patch_w}'
        depth = len(vit.blocks)
        for i in out_indices:
            if not -depth <= i < depth:
                raise ValueError(f'out_indices {tuple(out_indices)}: {i} is '
                                 f'out of range for {depth} blocks')
        self.out_indices = tuple(i % depth for i in out_indices)
        assert list(self.out_indices) == sorted(set(self.out_indices)), \
            f'out_indices must be strictly ascending, got {self.out_indices}'
        assert -1 <= frozen_stages <= depth, \
            f'frozen_stages must be in [-1, {depth}], got {frozen_stages}'
        self.arch = arch
        self.patch_size = patch_h
        self.embed_dims = vit.embed_dim
        self.num_extra_tokens = vit.num_prefix_tokens  # cls + registers
        self.norm_intermediate = norm_intermediate
        self.frozen_stages = frozen_stages
        self._init_reassemble(self.embed_dims, out_channels, resize_factors,
                              readout_type)
        if frozen_stages > 0:
            self._freeze_stages()

    def _freeze_stages(self) -> None:
        """Stop gradients and set eval mode as ``frozen_stages`` says."""
        vit = self.vit
        for param in (vit.cls_token, vit.reg_token, vit.pos_embed):
            if param is not None:
                param.requires_grad = False
        frozen = [vit.patch_embed, vit.pos_drop, vit.norm_pre,
                  *vit.blocks[:self.frozen_stages]]
        if self.frozen_stages == len(vit.blocks):
            frozen.append(vit.norm)
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'DINOv3MultiLevel':
        super().train(mode)
        if mode and self.frozen_stages > 0:
            self._freeze_stages()
        return self

    def forward_tokens(self,
                       x: Tensor) -> Tuple[List[Tensor], Tuple[int, int]]:
        """Tokens of the read-out blocks.

        Args:
            x (Tensor): Images (B, 3, H, W), any H and W.

        Returns:
            tuple: ``tokens``, one (B, E + h*w, C) tensor per read-out block
            (``E = num_extra_tokens``: the class token, then the register
            tokens), normalised as ``norm_intermediate`` says, and the patch
            grid ``(h, w)`` of the padded input.
        """
        x = self.pad_to_patch(x)
        hw = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        feats = self.vit.forward_intermediates(
            x,
            indices=list(self.out_indices),
            return_prefix_tokens=True,
            norm=self.norm_intermediate,
            stop_early=True,
            output_fmt='NLC',
            intermediates_only=True)
        last = len(self.vit.blocks) - 1
        tokens = []
        for i, (patch, prefix) in zip(self.out_indices, feats):
            y = torch.cat([prefix, patch], dim=1)
            if i == last and not self.norm_intermediate:
                y = self.vit.norm(y)
            tokens.append(y)
        return tokens, hw

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W) -> tuple of maps at strides ``self.strides``."""
        tokens, hw = self.forward_tokens(x)
        return tuple(
            self._reassemble(level, y, hw) for level, y in enumerate(tokens))
