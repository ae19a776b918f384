# Copyright (c) mmcast contributors. All rights reserved.
"""The multi-task network of SwinMTL: encoder, shared decoder, two heads."""
from typing import Optional, Tuple

from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS


class SwinMTLGenerator(BaseModule):
    """SwinV2 encoder → shared decoder → depth head and segmentation head.

    The "generator" of SwinMTL's adversarial training: :class:`SwinMTL`
    holds it as ``generator`` beside the ``critic`` so that
    ``MultiOptimWrapperConstructor`` gives each its optimizer. Only the
    encoder's last output (stride 32) feeds the decoder.

    Args:
        backbone (dict): Encoder config, e.g.
            ``dict(type='mmpretrain.SwinTransformerV2', out_indices=(3, ))``.
        decoder (dict): :class:`SwinMTLDecoder` config.
        depth_head (dict): :class:`SwinMTLDepthHead` config.
        seg_head (dict): :class:`SwinMTLSegHead` config.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 decoder: dict,
                 depth_head: dict,
                 seg_head: dict,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.decoder = MODELS.build(decoder)
        self.depth_head = MODELS.build(depth_head)
        self.seg_head = MODELS.build(seg_head)

    def forward(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """Predict segmentation logits and normalised depth.

        Args:
            inputs (Tensor): Images ``(B, 3, H, W)``.

        Returns:
            tuple[Tensor, Tensor]: Logits ``(B, C, H, W)`` and normalised
            depth σ ``(B, 1, H, W)`` (:meth:`SwinMTLDepthHead.decode` gives
            metres).
        """
        x = self.decoder(self.backbone(inputs)[-1], inputs.shape[-2:])
        return self.seg_head(x), self.depth_head(x)

    def get_layer_depth(self, param_name: str,
                        prefix: str = '') -> Tuple[int, int]:
        """Layer id of a parameter for layer-wise learning-rate decay.

        For mmpretrain's ``LearningRateDecayOptimWrapperConstructor``
        (``paramwise_cfg=dict(layer_decay_rate=0.9)``): the patch embedding
        is layer 0, block ``j`` of stage ``i`` is ``sum(depths[:i]) + j + 1``,
        the patch merging at the start of stage ``i`` counts as the last
        block of stage ``i - 1``, and all else (output norm, decoder, heads)
        is the top layer ``sum(depths) + 1``, whose learning rate is not
        decayed.

        Args:
            param_name (str): Parameter name, e.g.
                ``'backbone.stages.2.blocks.5.attn.w_msa.qkv.weight'``.
            prefix (str): Prefix of this module in ``param_name``.
                Defaults to ``''``.

        Returns:
            tuple[int, int]: Layer id and number of layers.
        """
        depths = self.backbone.depths
        num_layers = sum(depths) + 2
        name = param_name[len(prefix):] if param_name.startswith(
            prefix) else ''
        parts = name.split('.')
        if name.startswith('backbone.patch_embed') or \
                name == 'backbone.absolute_pos_embed':
            return 0, num_layers
        if name.startswith('backbone.stages.'):
            stage = int(parts[2])
            if parts[3] == 'blocks':
                return sum(depths[:stage]) + int(parts[4]) + 1, num_layers
            return sum(depths[:stage]), num_layers  # downsample
        return num_layers - 1, num_layers
