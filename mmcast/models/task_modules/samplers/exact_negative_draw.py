# Copyright (c) mmcast contributors. All rights reserved.
"""The exact negative draw of L_pxl: Gumbel-top-k over all candidates."""
from typing import Optional

import torch
from torch import Tensor

from .candidate_blocks import Blocks, columns_to_keys


@torch.no_grad()
def exact_negative_draw(y: Optional[Tensor], y_keys: Optional[Tensor],
                        blocks: Blocks, own: Optional[int], num_anchors: int,
                        num_neg: int, eps: float, device: torch.device,
                        generator: Optional[torch.Generator]) -> Tensor:
    """Draw ``num_neg`` negatives per anchor without replacement, with
    probability proportional to ``w = max(0, 1 - <y~_p, y~_q>) + eps``.

    Gumbel-top-k on ``log w`` over all M candidates: O(M) work and memory
    per anchor. With ``U ~ U(0, 1)`` the Gumbel noise is
    ``G = -log(-log U)``, so ``top-k(log w + G)`` is the top-k of
    ``w / -log U``, i.e. the bottom-k of ``w / log U``: one logarithm per
    candidate instead of three (``Tensor.exponential_`` is several times
    slower than ``rand`` + ``log`` on CPU), computed in place with at most
    two (c, M) tensors alive. Uniform weights reduce to the top-k of ``U``.

    Args:
        y (Tensor, optional): (c, Y) sampler features of the anchors; None
            for uniform weights.
        y_keys (Tensor, optional): (M_all, Y) sampler features of the key
            axis.
        blocks (tuple): (start, end) key rows of the candidates.
        own (int, optional): Within-image draws: the key row of the first
            anchor (anchor i is ``own + i``), never drawn.
        num_anchors (int): c, the anchors of the draw.
        num_neg (int): Negatives per anchor, at most the candidates.
        eps (float): Added to the weights.
        device (torch.device): Device of the draw.
        generator (torch.Generator, optional): Random generator.

    Returns:
        Tensor: (c, num_neg) long indices into the key axis.
    """
    if num_neg == 0:
        return torch.zeros(num_anchors, 0, dtype=torch.long, device=device)
    num_cand = sum(e - s for s, e in blocks)
    scores = torch.rand(
        num_anchors,
        num_cand,
        generator=generator,
        device=device,
        dtype=torch.float32)
    largest = y is None
    if not largest:
        scores.log_()
        one = scores.new_full((), 1 + eps)  # no host copy
        col = 0
        for s, e in blocks:
            block = scores[:, col:col + e - s]
            # max(0, 1 - <y~_p, y~_q>) + eps
            weights = torch.addmm(
                one, y, y_keys[s:e].t(), alpha=-1).clamp_(min=eps)
            torch.div(weights, block, out=block)
            col += e - s
    if own is not None:
        rows = torch.arange(num_anchors, device=device)
        fill = -1.0 if largest else float('inf')
        scores[rows, rows + (own - blocks[0][0])] = fill
    cols = scores.topk(num_neg, dim=1, largest=largest, sorted=False).indices
    return columns_to_keys(cols, blocks)
