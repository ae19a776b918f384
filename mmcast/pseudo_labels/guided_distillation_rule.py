# Copyright (c) mmcast contributors. All rights reserved.
"""Guided Distillation's per-query pseudo-label rule.

Berrada et al., WACV 2024: a query of the teacher's LAST decoder layer
becomes a pseudo-instance when its argmax class is not "no object", its
max softmax probability exceeds 0.7 and its soft mask area
``Σ sigmoid(mask logits)`` on the 1/4-resolution grid exceeds 5; the mask
is ``sigmoid > 0.5``. No NMS, no overlap removal, no top-k. It reads the
head's raw outputs, not MMDet's post-processed predictions (which pair one
query with several classes and upsample masks), and stays on the device.
"""
import numbers
from typing import List, Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData
from torch import Tensor

from mmcast.structures import TensorMasks

DEFAULT_GUIDED_RULE_CFG = dict(score_thr=0.7, min_mask_area=5.0, mask_thr=0.5)


def check_guided_rule_cfg(cfg: dict) -> dict:
    """Complete ``cfg`` with the paper's values and validate them.

    Args:
        cfg (dict): Any subset of ``score_thr`` (in [0, 1)),
            ``min_mask_area`` (>= 0, in 1/4-grid pixels) and ``mask_thr``
            (in (0, 1)).

    Returns:
        dict: All three keys as floats.

    Raises:
        ValueError: Naming an unknown key or an invalid value.
    """
    unknown = sorted(set(cfg) - set(DEFAULT_GUIDED_RULE_CFG))
    if unknown:
        raise ValueError(
            f'unknown Guided Distillation pseudo-label key(s) {unknown}; '
            f'valid keys are {sorted(DEFAULT_GUIDED_RULE_CFG)}')
    out = dict(DEFAULT_GUIDED_RULE_CFG, **cfg)
    valid = dict(score_thr=lambda v: 0 <= v < 1,
                 min_mask_area=lambda v: v >= 0,
                 mask_thr=lambda v: 0 < v < 1)
    for key, in_range in valid.items():
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not in_range(value):
            raise ValueError(
                f'pseudo_label_rule.{key} out of range: {value!r}')
        out[key] = float(value)
    return out


def guided_distillation_pseudo_labels(
        cls_logits: Tensor, mask_logits: Tensor, pad_shape: Tuple[int, int],
        score_thr: float = 0.7, min_mask_area: float = 5.0,
        mask_thr: float = 0.5) -> List[InstanceData]:
    """Pseudo-instances of a batch from the teacher's last decoder layer.

    Args:
        cls_logits (Tensor): (B, Q, K + 1) class logits, the last one being
            "no object".
        mask_logits (Tensor): (B, Q, h, w) mask logits on the head's
            1/4-resolution grid of the padded batch.
        pad_shape (tuple[int, int]): (H, W) of the padded batch; masks are
            thresholded on the grid, then resized to it (nearest).
        score_thr (float): Keep a query whose max softmax > this.
        min_mask_area (float): ... and whose ``Σ sigmoid(mask logits)`` on
            the grid > this.
        mask_thr (float): Mask = ``sigmoid(mask logits) > mask_thr``.

    Returns:
        list[InstanceData]: Per image, on the inputs' device: ``labels``
        (n,) int64, ``scores`` (n,) float32 and ``masks``
        (:class:`TensorMasks`, (n, H, W) bool). n may be 0.
    """
    num_classes = cls_logits.shape[-1] - 1
    scores, labels = cls_logits.float().softmax(-1).max(-1)  # (B, Q)
    soft_masks = mask_logits.float().sigmoid()  # (B, Q, h, w)
    areas = soft_masks.flatten(2).sum(-1)  # (B, Q)
    keep = (labels != num_classes) & (scores > score_thr) & \
        (areas > min_mask_area)
    results = []
    for i in range(cls_logits.shape[0]):
        masks = soft_masks[i, keep[i]] > mask_thr  # (n, h, w)
        if len(masks):
            masks = F.interpolate(
                masks[None].float(), size=tuple(pad_shape),
                mode='nearest')[0]
        else:  # interpolate refuses an empty batch
            masks = masks.new_zeros((0, *pad_shape))
        results.append(InstanceData(
            labels=labels[i, keep[i]],
            scores=scores[i, keep[i]],
            masks=TensorMasks(masks.bool())))
    return results
