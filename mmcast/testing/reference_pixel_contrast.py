# Copyright (c) mmcast contributors. All rights reserved.
"""The authors' L_pxl, written from the formula: the reference that the
tests and ``tools/benchmark/pixel_contrast.py`` check
:class:`~mmcast.models.losses.InstanceAwarePixelContrastLoss` against.

For each anchor image the dense (N, (B-1)*N) weight matrix
``w = max(0, 1 - y~ y~^T) + eps`` against every pixel of the other images,
Gumbel noise on the whole ``log w`` and the top R
(:func:`authors_negatives`); then the (N, R, D) weak-view keys gathered
with gradient, which autograd keeps for backward (:func:`authors_loss`).
Its memory grows as (B*N)^2: for small problems only.
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from mmcast.models.losses import InstanceAwarePixelContrastLoss


@torch.no_grad()
def authors_negatives(y: Tensor,
                      num_negatives: int,
                      eps: float = 1e-6) -> Tensor:
    """The authors' draw: Gumbel-top-k on the dense weight matrix.

    For each anchor image b, ``w = max(0, 1 - y~_b y~_o^T) + eps`` against
    the pixels of all other images o, ``log w`` plus Gumbel noise
    ``-log(-log U)`` on the whole matrix, and the top R per anchor: R
    negatives without replacement, drawn in proportion to ``w``.

    Args:
        y (Tensor): (B, N, Y) L2-normalised sampler features ``y~``.
        num_negatives (int): R; at most the (B - 1) * N candidates are
            drawn.
        eps (float): Added to the weights.

    Returns:
        Tensor: (B*N, R_eff) long indices into the flat (B*N) pixel axis
        (pixel p of image b is ``b * N + p``), never in the anchor's image.
    """
    batch, num_pixels, _ = y.shape
    num_neg = min(num_negatives, (batch - 1) * num_pixels)
    out = []
    for b in range(batch):
        others = torch.cat([y[:b], y[b + 1:]]).flatten(0, 1)  # ((B-1)N, Y)
        weights = (1 - y[b] @ others.t()).clamp(min=0) + eps  # (N, (B-1)N)
        gumbel = -torch.log(-torch.log(torch.rand_like(weights)))
        cols = (weights.log() + gumbel).topk(num_neg, dim=1).indices
        # column c is pixel c of the other images: skip image b
        out.append(cols + num_pixels * (cols >= b * num_pixels))
    return torch.cat(out)


def authors_loss(loss: InstanceAwarePixelContrastLoss, z_weak: Tensor,
                 z_strong: Tensor, neg_idx: Tensor) -> Tensor:
    """The authors' loss given the negatives, image by image.

    Per anchor image b: anchors ``z_w`` (N, D), positives ``z_s`` (N, D)
    without gradient, negatives the weak-view embeddings ``z_w[neg_idx]``
    (N, R, D) with gradient (autograd keeps them for backward);
    ``s- <- max(0, s-/T - neg_margin)``, cross-entropy with the positive as
    the target, mean over all B*N anchors, times ``loss_weight``.

    Args:
        loss (InstanceAwarePixelContrastLoss): Source of T, the hinge, the
            loss weight and the normalisation eps.
        z_weak (Tensor): (B, D, h, w) weak-view embeddings, with gradient.
        z_strong (Tensor): (B, D, h, w) strong-view embeddings.
        neg_idx (Tensor): (B*N, R) indices into the flat (B*N) pixel axis.

    Returns:
        Tensor: The scalar loss.
    """
    batch, dim, h, w = z_weak.shape
    num_pixels = h * w
    z_w = F.normalize(
        z_weak, dim=1, eps=loss.eps).flatten(2).transpose(1,
                                                          2).reshape(-1, dim)
    z_s = F.normalize(
        z_strong.detach(), dim=1,
        eps=loss.eps).flatten(2).transpose(1, 2).reshape(-1, dim)
    total = z_w.new_zeros(())
    for b in range(batch):
        rows = slice(b * num_pixels, (b + 1) * num_pixels)
        anchors = z_w[rows]
        pos = (anchors * z_s[rows]).sum(dim=1) / loss.temperature
        neg = torch.einsum('nd,nrd->nr', anchors,
                           z_w[neg_idx[rows]]) / loss.temperature
        if loss.neg_margin is not None:
            neg = (neg - loss.neg_margin).clamp(min=0)
        logits = torch.cat([pos[:, None], neg], dim=1)
        total = total + F.cross_entropy(
            logits,
            logits.new_zeros(num_pixels, dtype=torch.long),
            reduction='sum')
    return loss.loss_weight * total / (batch * num_pixels)


def authors_step(loss: InstanceAwarePixelContrastLoss, z_weak: Tensor,
                 z_strong: Tensor, mask_logits: Tensor,
                 cls_logits: Tensor) -> Tensor:
    """The authors' formulation end to end: ``y~``, dense draw, loss.

    Args:
        loss (InstanceAwarePixelContrastLoss): Source of the sampler
            features ``y~``, R and the settings of :func:`authors_loss`.
        z_weak (Tensor): (B, D, h, w) weak-view embeddings, with gradient.
        z_strong (Tensor): (B, D, h, w) strong-view embeddings.
        mask_logits (Tensor): (B, K, H, W) mask logits of the predictions.
        cls_logits (Tensor): (B, K, C + 1) class logits of the predictions.

    Returns:
        Tensor: The scalar loss.
    """
    y = loss.sampling_features(mask_logits, cls_logits, z_weak.shape[-2:])
    neg_idx = authors_negatives(y, loss.num_negatives, loss.eps)
    return authors_loss(loss, z_weak, z_strong, neg_idx)
