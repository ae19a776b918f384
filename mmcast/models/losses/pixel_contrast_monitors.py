# Copyright (c) mmcast contributors. All rights reserved.
"""The logged statistics of L_pxl: positive/negative margin and false
negative rate of the sampled negatives."""
from typing import Dict, Optional

import torch
from torch import Tensor


class PixelContrastMonitors:
    """Running sums of L_pxl's statistics over the chunks of one call.

    Args:
        like (Tensor): Float tensor whose dtype and device the sums take.
        ids (Tensor, optional): (B*N, 1) ids of this process's anchors,
            negative for pixels to ignore; without them no ``pxl_fnr``.
        id_keys (Tensor, optional): (M_all, 1) ids on the key axis.
    """

    def __init__(self,
                 like: Tensor,
                 ids: Optional[Tensor] = None,
                 id_keys: Optional[Tensor] = None) -> None:
        self.ids = ids
        self.id_keys = id_keys
        self.pos_dist = like.new_zeros(())
        self.neg_dist = like.new_zeros(())
        self.num_neg = 0
        self.false_neg = like.new_zeros(())
        self.num_fnr = like.new_zeros(())

    @torch.no_grad()
    def update(self, start: int, end: int, pos_cos: Tensor, neg_cos: Tensor,
               neg: Tensor) -> None:
        """Add the anchors ``start:end`` of the flat pixel axis.

        Args:
            start (int): First anchor.
            end (int): One past the last anchor.
            pos_cos (Tensor): (c,) cosine of each anchor and its positive.
            neg_cos (Tensor): (c, R) cosine of each anchor and its negatives.
            neg (Tensor): (c, R) negatives, indices into the key axis.
        """
        self.pos_dist += (1 - pos_cos).sum()
        self.neg_dist += (1 - neg_cos).sum()
        self.num_neg += neg_cos.numel()
        if self.ids is not None:
            anchor_ids = self.ids[start:end]
            valid = (anchor_ids >= 0).expand_as(neg)
            self.false_neg += ((self.id_keys[neg, 0] == anchor_ids)
                               & valid).sum()
            self.num_fnr += valid.sum()

    def summary(self, num_anchors: int) -> Dict[str, Tensor]:
        """The statistics, detached.

        Args:
            num_anchors (int): B*N, this process's anchors.

        Returns:
            dict[str, Tensor]: ``pxl_margin`` the mean cosine distance
            (1 - cos) of the sampled negatives minus that of the positives
            (0 for the negatives when none exist); ``pxl_fnr`` (only with
            ids) the share of sampled negatives of anchors with a
            non-negative id whose id equals the anchor's (0 when there are
            none).
        """
        stats = dict(pxl_margin=self.neg_dist / max(self.num_neg, 1) -
                     self.pos_dist / num_anchors)
        if self.ids is not None:
            stats['pxl_fnr'] = self.false_neg / self.num_fnr.clamp(min=1)
        return stats
