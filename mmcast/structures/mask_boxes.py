# Copyright (c) mmcast contributors. All rights reserved.
"""Boxes of binary instance masks, computed on the masks' device."""
import torch


def masks_to_bboxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight ``(x1, y1, x2, y2)`` boxes of bool masks ``(n, H, W)``.

    ``x2``/``y2`` are exclusive (``x2 = last column + 1``), the convention of
    MMDetection's ``BitmapMasks.get_bboxes``, ``mask2bbox`` (a Python loop
    with two ``nonzero`` calls per mask) and pycocotools' ``toBbox``.
    Empty masks get an all-zero box. The boxes (float32 ``(n, 4)``) are
    computed on the masks' device.
    """
    return bboxes_of_extents(masks.any(dim=-1), masks.any(dim=-2))


def bboxes_of_extents(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """The boxes of :func:`masks_to_bboxes` from which rows and which
    columns of each mask hold a pixel.

    Args:
        rows (Tensor): bool (..., H): ``masks.any(-1)``.
        cols (Tensor): bool (..., W): ``masks.any(-2)``.

    Returns:
        Tensor: float32 (..., 4).
    """
    h, w = rows.shape[-1], cols.shape[-1]
    ar_h = torch.arange(h, device=rows.device)
    ar_w = torch.arange(w, device=cols.device)
    boxes = torch.stack([
        torch.where(cols, ar_w, w).amin(dim=-1),
        torch.where(rows, ar_h, h).amin(dim=-1),
        torch.where(cols, ar_w, -1).amax(dim=-1) + 1,
        torch.where(rows, ar_h, -1).amax(dim=-1) + 1,
    ], dim=-1).float()
    return torch.where(rows.any(dim=-1, keepdim=True), boxes, 0.0)
