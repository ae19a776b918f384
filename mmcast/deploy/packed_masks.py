# Copyright (c) mmcast contributors. All rights reserved.
"""Binary masks packed 8 pixels to a byte along the width.

The deployment predict (:class:`~mmcast.deploy.StaticMask2FormerPredictor`,
``mask_format='packed'``) returns its K masks per image as uint8
(B, K, H, ceil(W / 8)): bit 7 - j of byte ``x`` of a row is pixel
``8 x + j`` (NumPy's ``packbits`` order, ``bitorder='big'``), the bits past
W are 0. Packing inside the graph lets the compiler fuse upsampling,
thresholding and packing into one kernel that writes an eighth of the bool
masks' bytes. A consumer unpacks only the instances it keeps, cropped to
the image (:func:`unpack_masks`, or ``numpy.unpackbits(packed, axis=-1,
count=w)`` without PyTorch).
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .metadata import DeployError

#: Mask formats of the static predict's ``masks`` output.
MASK_FORMATS = ('packed', 'bool')


def check_mask_format(mask_format: str, where: str) -> str:
    """``mask_format`` if it is one of :data:`MASK_FORMATS`, else a
    :class:`~mmcast.deploy.DeployError` naming ``where``."""
    if mask_format not in MASK_FORMATS:
        raise DeployError(f'{where}: mask_format must be one of '
                          f'{MASK_FORMATS}, got {mask_format!r}')
    return mask_format


def bit_weights(device: torch.device) -> Tensor:
    """uint8 (8, ): 128, 64, ..., 1, the value of each pixel of a byte."""
    return torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8,
                        device=device)


def pack_masks(masks: Tensor) -> Tensor:
    """bool (..., H, W) → uint8 (..., H, ceil(W / 8)), bits past W 0."""
    width = masks.shape[-1]
    bytes_per_row = -(-width // 8)
    bits = masks.to(torch.uint8)
    if width % 8:
        bits = F.pad(bits, (0, 8 * bytes_per_row - width))
    bits = bits.unflatten(-1, (bytes_per_row, 8))
    packed = bits[..., 0] << 7
    for j in range(1, 8):
        packed = packed | (bits[..., j] << (7 - j))
    return packed


def packed_extents(packed: Tensor, width: int) -> Tuple[Tensor, Tensor]:
    """Which rows (..., H) and which of the ``width`` columns (..., W) of
    packed masks hold a pixel (bool), read from the packed bytes (the
    columns from their bitwise or over the rows, halving them in turn) for
    :func:`mmcast.structures.bboxes_of_extents`."""
    rows = (packed != 0).any(dim=-1)
    union = packed
    while union.shape[-2] > 1:
        half = union.shape[-2] // 2
        merged = union[..., :half, :] | union[..., half:2 * half, :]
        if union.shape[-2] % 2:
            merged[..., :1, :] |= union[..., 2 * half:, :]
        union = merged
    cols = unpack_masks(union, 1, width)[..., 0, :]
    return rows, cols


def unpack_masks(packed: Tensor, height: int, width: int) -> Tensor:
    """uint8 (..., H, ceil(W / 8)) → bool (..., height, width): the
    top-left ``height`` × ``width`` pixels (``width`` at most 8 bytes per
    row)."""
    if width > 8 * packed.shape[-1] or height > packed.shape[-2]:
        raise DeployError(
            f'packed masks of {packed.shape[-2]} rows x '
            f'{8 * packed.shape[-1]} columns at most cannot be cropped to '
            f'{height}x{width}')
    rows = packed[..., :height, :-(-width // 8)]
    bits = rows.unsqueeze(-1) & bit_weights(packed.device)
    return bits.flatten(-2)[..., :width] != 0
