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
    n, h, w = masks.shape
    rows = masks.any(dim=2)  # (n, H)
    cols = masks.any(dim=1)  # (n, W)
    ar_h = torch.arange(h, device=masks.device).expand(n, h)
    ar_w = torch.arange(w, device=masks.device).expand(n, w)
    boxes = torch.stack([
        torch.where(cols, ar_w, w).min(dim=1).values,
        torch.where(rows, ar_h, h).min(dim=1).values,
        torch.where(cols, ar_w, -1).max(dim=1).values + 1,
        torch.where(rows, ar_h, -1).max(dim=1).values + 1,
    ], dim=1).float()
    return torch.where(rows.any(dim=1, keepdim=True), boxes, 0.0)
