# Copyright (c) mmcast contributors. All rights reserved.
"""Cosine logits against gathered keys, without keeping the gathered keys
for backward."""
from typing import Optional, Tuple

import torch
from torch import Tensor


class GatheredCosine(torch.autograd.Function):
    """``out[i, r] = <anchors[i], keys[index[i, r]]>`` for (c, D) anchors,
    (M, D) keys and (c, R) indices.

    The (c, R, D) gathered keys are rebuilt in backward instead of being
    saved, so autograd keeps only ``index`` (and references to ``anchors``
    and ``keys``) per chunk. ``keys`` receive a gradient when they require
    one (weak-view negatives).
    """

    @staticmethod
    def forward(ctx, anchors: Tensor, keys: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(anchors, keys, index)
        return torch.bmm(keys[index], anchors.unsqueeze(2)).squeeze(2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, Optional[Tensor], None]:
        anchors, keys, index = ctx.saved_tensors
        grad_anchors = torch.bmm(grad.unsqueeze(1), keys[index]).squeeze(1)
        grad_keys = None
        if ctx.needs_input_grad[1]:
            grad_keys = torch.zeros_like(keys).index_add_(
                0, index.flatten(),
                (grad.unsqueeze(2) * anchors.unsqueeze(1)).flatten(0, 1))
        return grad_anchors, grad_keys, None
