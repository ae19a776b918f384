# Copyright (c) mmcast contributors. All rights reserved.
"""``nn.MultiheadAttention`` on PyTorch's fused attention kernel."""
from typing import Optional, Tuple

from mmdet.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class FusedMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` that never returns attention weights, so
    that PyTorch runs its fused ``scaled_dot_product_attention``.

    MMCV's ``MultiheadAttention`` (Mask2Former's decoder, Grounding-DINO)
    asks for the weights, which forces the unfused softmax(QKᵀ)V path, and
    never uses them. The second output is ``None``; everything else is the
    parent's, so that an ``nn.MultiheadAttention`` can be switched to it in
    place, with the same parameters.
    """

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = True,
                attn_mask: Optional[Tensor] = None,
                average_attn_weights: bool = True,
                is_causal: bool = False) -> Tuple[Tensor, None]:
        """See :meth:`nn.MultiheadAttention.forward` (``need_weights`` is
        ignored: always False).

        Returns:
            tuple: The attention output, (L, B, E) or (B, L, E) as the
            query (``batch_first``), and ``None``.
        """
        return super().forward(
            query, key, value, key_padding_mask=key_padding_mask,
            need_weights=False, attn_mask=attn_mask,
            average_attn_weights=average_attn_weights, is_causal=is_causal)
