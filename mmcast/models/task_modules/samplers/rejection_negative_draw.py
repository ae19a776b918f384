# Copyright (c) mmcast contributors. All rights reserved.
"""The rejection negative draw of L_pxl: weighted draws, with replacement,
from uniform proposals."""
from typing import Optional

import torch
from torch import Tensor

from .candidate_blocks import Blocks, columns_to_keys


@torch.no_grad()
def rejection_negative_draw(y: Optional[Tensor], y_keys: Optional[Tensor],
                            blocks: Blocks, own: Optional[int],
                            num_anchors: int, num_neg: int,
                            rejection_rounds: int, min_proposals: int,
                            eps: float, device: torch.device,
                            generator: Optional[torch.Generator]) -> Tensor:
    """Draw ``num_neg`` negatives per anchor with replacement, each
    distributed as ``w / sum w`` with ``w = max(0, 1 - <y~_p, y~_q>) +
    eps``.

    Each round proposes ``P = max(num_neg, min_proposals)`` uniform
    candidates to every anchor still short of ``num_neg`` negatives and
    accepts each with probability ``w / (1 + eps)`` (since ``y~ >= 0`` and
    ``||y~|| = 1``, ``w`` lies in ``[eps, 1 + eps]``), in order, until the
    anchor has ``num_neg``. Anchors still short after ``rejection_rounds``
    rounds (mean acceptance below about ``1 / rejection_rounds``) fill the
    rest by Gumbel-top-k on ``log w`` among all the proposals they were
    made: a weighted draw from a uniform subset of the candidates, slightly
    closer to uniform than the target. When all predictions agree, ``w`` is
    ``eps`` everywhere, nothing is accepted and the fallback draws
    uniformly. Work per round: (c, P, Y) gathered features, whatever the
    number of candidates.

    Args:
        y (Tensor, optional): (c, Y) sampler features of the anchors; None
            for uniform weights.
        y_keys (Tensor, optional): (M_all, Y) sampler features of the key
            axis.
        blocks (tuple): (start, end) key rows of the candidates.
        own (int, optional): Within-image draws: the key row of the first
            anchor (anchor i is ``own + i``), never drawn.
        num_anchors (int): c, the anchors of the draw.
        num_neg (int): Negatives per anchor, fewer than the candidates.
        rejection_rounds (int): Proposal rounds before the fallback.
        min_proposals (int): Least proposals per round.
        eps (float): Added to the weights.
        device (torch.device): Device of the draw.
        generator (torch.Generator, optional): Random generator.

    Returns:
        Tensor: (c, num_neg) long indices into the key axis.
    """
    num_cand = sum(e - s for s, e in blocks) - (own is not None)
    num_prop = max(num_neg, min_proposals)
    out = torch.empty(num_anchors, num_neg, dtype=torch.long, device=device)
    filled = torch.zeros(num_anchors, dtype=torch.long, device=device)
    pending = torch.arange(num_anchors, device=device)
    pool_keys = pool_weights = None
    for _ in range(rejection_rounds):
        cols = torch.randint(
            num_cand, (pending.numel(), num_prop),
            generator=generator,
            device=device)
        if own is not None:  # skip the anchor's own pixel
            cols += cols >= (pending + own - blocks[0][0])[:, None]
        keys = columns_to_keys(cols, blocks)
        u = torch.rand(keys.shape, generator=generator, device=device)
        if y is None:
            weights = torch.ones_like(u)
        else:
            weights = (1 + eps - torch.bmm(
                y_keys[keys], y[pending].unsqueeze(2)).squeeze(2)).clamp_(
                    min=eps)
        accept = u * (1 + eps) < weights
        slot = filled[pending, None] + accept.cumsum(dim=1) - 1
        rows, cols = (accept & (slot < num_neg)).nonzero(as_tuple=True)
        out[pending[rows], slot[rows, cols]] = keys[rows, cols]
        filled[pending] = (filled[pending] + accept.sum(dim=1)).clamp(
            max=num_neg)
        short = filled[pending] < num_neg
        pending = pending[short]
        pool_keys = keys[short] if pool_keys is None else torch.cat(
            [pool_keys[short], keys[short]], dim=1)
        pool_weights = weights[short] if pool_weights is None else \
            torch.cat([pool_weights[short], weights[short]], dim=1)
        if pending.numel() == 0:
            return out
    # Fallback: weighted draw without replacement among all proposals made
    # to the anchor (Gumbel-top-k as in the exact draw), into the missing
    # slots.
    u = torch.rand(pool_keys.shape, generator=generator, device=device)
    order = (pool_weights / -u.log()).topk(num_neg, dim=1).indices
    slots = torch.arange(num_neg, device=device)[None]
    have = filled[pending, None]
    fill = pool_keys.gather(1, order.gather(1, (slots - have).clamp(min=0)))
    out[pending] = torch.where(slots >= have, fill, out[pending])
    return out
