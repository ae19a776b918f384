# Copyright (c) mmcast contributors. All rights reserved.
"""Turn a teacher's raw instance predictions into pseudo-labels.

CAST (authors' code): keep detections with score > 0.3, at most 100 per
image; binarise masks at 0.5; paint the masks in descending score order so
that they do not overlap (a pixel belongs to the first mask that takes it);
drop the masks left empty.
"""
import numbers
from typing import Optional, Union

import numpy as np
import torch
from mmengine.structures import InstanceData

from mmcast.structures import masks_to_bboxes

DEFAULT_FILTER_CFG = dict(
    score_thr=0.3,
    max_per_image=100,
    mask_thr=0.5,
    non_overlapping=True,
    min_area=1)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_filter_cfg(cfg: Optional[dict]) -> dict:
    """Complete ``cfg`` with the defaults and validate every value.

    Args:
        cfg (dict, optional): Any subset of ``score_thr``, ``max_per_image``,
            ``mask_thr``, ``non_overlapping``, ``min_area``.

    Returns:
        dict: All five keys, with plain Python values (json-serialisable).

    Raises:
        ValueError: On an unknown key or an invalid value (the message names
            the key and the value).
    """
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(DEFAULT_FILTER_CFG))
    if unknown:
        raise ValueError(
            f'unknown pseudo-label filter key(s) {unknown}; valid keys are '
            f'{sorted(DEFAULT_FILTER_CFG)}')
    out = dict(DEFAULT_FILTER_CFG)
    out.update(cfg)
    score_thr, mask_thr = out['score_thr'], out['mask_thr']
    if not _is_real(score_thr) or not 0 <= score_thr <= 1:
        raise ValueError(
            f'score_thr must be a number in [0, 1], got {score_thr!r}')
    if not _is_real(mask_thr) or not 0 <= mask_thr < 1:
        raise ValueError(
            f'mask_thr must be a number in [0, 1), got {mask_thr!r}')
    if not _is_int(out['max_per_image']) or out['max_per_image'] < 1:
        raise ValueError('max_per_image must be an integer >= 1, got '
                         f'{out["max_per_image"]!r}')
    if not _is_int(out['min_area']) or out['min_area'] < 1:
        raise ValueError(
            f'min_area must be an integer >= 1, got {out["min_area"]!r}')
    if not isinstance(out['non_overlapping'], (bool, np.bool_)):
        raise ValueError('non_overlapping must be a bool, got '
                         f'{out["non_overlapping"]!r}')
    return dict(
        score_thr=float(score_thr),
        max_per_image=int(out['max_per_image']),
        mask_thr=float(mask_thr),
        non_overlapping=bool(out['non_overlapping']),
        min_area=int(out['min_area']))


def _as_tensor(x) -> torch.Tensor:
    """A tensor as it is (same device, detached); arrays and MMDet masks
    become CPU tensors."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    if hasattr(x, 'to_ndarray'):  # BitmapMasks / PolygonMasks
        x = x.to_ndarray()
    return torch.as_tensor(np.asarray(x))


def paint_in_order(masks: torch.Tensor) -> torch.Tensor:
    """Make bool masks ``(n, H, W)`` disjoint: each pixel stays only in the
    first mask (lowest index) that has it.

    Vectorised on the masks' device: the owner of a pixel is the first index
    of the largest value along dim 0 (``argmax`` returns the first maximum).
    """
    if len(masks) < 2:
        return masks
    owner = masks.to(torch.uint8).argmax(dim=0)  # (H, W)
    index = torch.arange(len(masks), device=masks.device).view(-1, 1, 1)
    return (owner == index) & masks.any(dim=0)


class PseudoLabelFilter:
    """Select and clean a teacher's instance predictions.

    Args:
        score_thr (float): Keep instances with ``score > score_thr``.
            Defaults to 0.3.
        max_per_image (int): Keep at most this many (the highest scores).
            Defaults to 100.
        mask_thr (float): Float masks are binarised as ``mask > mask_thr``;
            bool masks are used as they are. Defaults to 0.5.
        non_overlapping (bool): Paint the masks in descending score order; a
            pixel belongs to the first mask that takes it. Defaults to True.
        min_area (int): Drop masks with fewer pixels (after painting).
            Defaults to 1 (drop empty masks).

    Also accepts a single dict: ``PseudoLabelFilter(dict(score_thr=0.5))``.
    ``__call__`` returns an :class:`InstanceData` with ``masks`` (bool
    ``(n, H, W)``), ``labels`` (int64), ``scores`` (float32) and ``bboxes``
    (float32 ``(n, 4)`` xyxy recomputed from the masks), sorted by
    descending score, on the device of the predictions (tensors are never
    copied to the host; numpy arrays and MMDet masks give CPU tensors).
    Its metainfo ``num_over_cap`` counts the instances above ``score_thr``
    that ``max_per_image`` left out, plus those the teacher's own cap left
    out (the ``num_over_cap`` of the predictions' metainfo, see
    :func:`~mmcast.models.seg_heads.lean_maskformer_fusion_head.
    count_over_cap`), and ``max_per_image`` the lower of the two caps.
    """

    def __init__(self, cfg: Optional[dict] = None, **kwargs) -> None:
        if cfg is not None and not isinstance(cfg, dict):
            raise ValueError(f'filter cfg must be a dict, got {cfg!r}')
        merged = dict(cfg or {})
        merged.update(kwargs)
        self.cfg = check_filter_cfg(merged)
        for key, value in self.cfg.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v!r}' for k, v in self.cfg.items())
        return f'{self.__class__.__name__}({args})'

    def __call__(self, pred_instances: InstanceData) -> InstanceData:
        """Filter one image's predictions (see the class docstring)."""
        scores = _as_tensor(pred_instances.scores).float().reshape(-1)
        labels = _as_tensor(pred_instances.labels).long().reshape(-1)
        masks = _as_tensor(pred_instances.masks)
        if masks.dim() != 3 or masks.shape[0] != scores.numel() or \
                labels.numel() != scores.numel():
            raise ValueError(
                'pred_instances must hold masks (N, H, W), labels (N,) and '
                f'scores (N,); got masks {tuple(masks.shape)}, labels '
                f'{tuple(labels.shape)}, scores {tuple(scores.shape)}')

        keep = torch.nonzero(scores > self.score_thr).flatten()
        # descending score, ties broken by the teacher's order (stable)
        order = torch.argsort(scores[keep], descending=True, stable=True)
        over_cap = max(len(keep) - self.max_per_image, 0)
        keep = keep[order][:self.max_per_image]
        scores, labels, masks = scores[keep], labels[keep], masks[keep]
        if masks.dtype != torch.bool:
            masks = masks.float() > self.mask_thr
        if self.non_overlapping:
            masks = paint_in_order(masks)
        ok = masks.flatten(1).sum(dim=1) >= self.min_area
        masks, labels, scores = masks[ok], labels[ok], scores[ok]

        teacher = getattr(pred_instances, 'metainfo', {})
        results = InstanceData(metainfo=dict(
            max_per_image=min(self.max_per_image,
                              teacher.get('max_per_image') or
                              self.max_per_image),
            num_over_cap=over_cap + int(teacher.get('num_over_cap', 0))))
        results.masks = masks.contiguous()
        results.labels = labels
        results.scores = scores
        results.bboxes = masks_to_bboxes(masks)
        return results


def build_filter(
        cfg: Union[None, dict, PseudoLabelFilter]) -> PseudoLabelFilter:
    """A :class:`PseudoLabelFilter` from a dict (or one that already is)."""
    if isinstance(cfg, PseudoLabelFilter):
        return cfg
    return PseudoLabelFilter(cfg)
