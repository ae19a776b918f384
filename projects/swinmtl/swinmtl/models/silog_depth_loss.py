# Copyright (c) mmcast contributors. All rights reserved.
"""Scale-invariant log loss over the valid pixels of a batch."""
import torch
import torch.nn as nn
from torch import Tensor

from mmseg.registry import MODELS


@MODELS.register_module()
class SiLogDepthLoss(nn.Module):
    """``sqrt(mean(g²) − λ·mean(g)²)``, ``g = log gt − log pred``.

    The means run over all valid pixels of the batch together (SwinMTL's
    and GLPDepth's loss, λ = 0.5). mmseg 1.2.2's ``SiLogLoss`` is not used
    because it differs in three ways that matter here:

    - it takes every ``gt > eps`` as valid; ``SegDataPreProcessor`` pads
      ``gt_depth_map`` with ``seg_pad_val`` (255), which it would learn as
      255 m, and it has no upper bound (the spec's ``gt < d_max``);
    - it averages per-image losses rather than pooling the pixels;
    - an image without valid pixels, or a perfect prediction, puts
      ``sqrt(0)`` in the graph, whose gradient is NaN.

    Here the caller passes the valid mask, an empty mask gives a zero loss
    that still has a graph, and the square root's argument is clamped at
    ``eps`` (changing only losses below ``sqrt(eps)``). Masked sums instead
    of boolean indexing keep it free of host-device synchronisation.

    Args:
        variance_focus (float): λ. Defaults to 0.5.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        eps (float): Floor of depths before the log and of the root's
            argument. Defaults to 1e-6.
    """

    def __init__(self,
                 variance_focus: float = 0.5,
                 loss_weight: float = 1.0,
                 eps: float = 1e-6) -> None:
        super().__init__()
        if not 0 <= variance_focus <= 1:
            raise ValueError('variance_focus must be in [0, 1], got '
                             f'{variance_focus}')
        self.variance_focus = variance_focus
        self.loss_weight = loss_weight
        self.eps = eps

    def forward(self, pred: Tensor, target: Tensor,
                valid_mask: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): Predicted depth in metres, ``(B, 1, H, W)``.
            target (Tensor): Ground-truth depth, same shape.
            valid_mask (Tensor): bool, same shape; True where ``target`` is
                valid.

        Returns:
            Tensor: Scalar loss.
        """
        if not pred.shape == target.shape == valid_mask.shape:
            raise ValueError(
                f'pred {tuple(pred.shape)}, target {tuple(target.shape)} and '
                f'valid_mask {tuple(valid_mask.shape)} must have one shape')
        mask = valid_mask.float()
        count = mask.sum()
        g = (target.float().clamp(min=self.eps).log() -
             pred.float().clamp(min=self.eps).log()) * mask
        mean_g = g.sum() / count.clamp(min=1)
        mean_g2 = g.pow(2).sum() / count.clamp(min=1)
        variance = mean_g2 - self.variance_focus * mean_g.pow(2)
        loss = torch.sqrt(variance.clamp(min=self.eps)) * (count > 0)
        return self.loss_weight * loss
