# Copyright (c) mmcast contributors. All rights reserved.
"""The key axis of L_pxl: the pixels its negatives are indices into, this
process's or, gathered, every process's."""
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine import dist
from torch import Tensor

from mmcast.utils.gather_rows import all_gather_rows


def gather_key_axis(
    rows: Sequence[Optional[Tensor]], batch_size: int, num_pixels: int,
    device: torch.device, across_processes: bool
) -> Tuple[List[Optional[Tensor]], List[Tuple[int, int]], int]:
    """The rows the negatives are drawn from, and where each image lies.

    Locally (``across_processes=False`` or outside a distributed run) the
    key axis is this process's flat (B*N) pixel axis. Across processes it
    is every process's pixels in rank order: the other processes' rows are
    gathered without gradient, this process's rows are the given tensors (a
    weak-view key keeps its gradient). All present rows travel in one
    all-gather (as float32); every process must call this.

    Args:
        rows (list[Tensor | None]): (B*N, C_i) per-pixel tensors of this
            process (keys, sampler features, ids), None where absent.
        batch_size (int): B, this process's images.
        num_pixels (int): N = h * w.
        device (torch.device): Device of the gathered layout.
        across_processes (bool): Gather every process's rows.

    Returns:
        tuple: the rows on the key axis (None stays None); the (start, end)
        key rows of every image of the axis; the index on the axis of this
        process's first image.
    """
    if not across_processes or dist.get_world_size() == 1:
        return list(rows), [(b * num_pixels, (b + 1) * num_pixels)
                            for b in range(batch_size)], 0
    shapes, _ = all_gather_rows(
        torch.tensor([[batch_size, num_pixels]], device=device))
    images, start = [], 0
    for num_images, pixels in shapes.tolist():
        images += [(start + b * pixels, start + (b + 1) * pixels)
                   for b in range(num_images)]
        start += num_images * pixels
    first = int(shapes[:dist.get_rank(), 0].sum())
    offset, end = images[first][0], images[first][0] + batch_size * num_pixels
    present = [row for row in rows if row is not None]
    if not present:
        return list(rows), images, first
    gathered, _ = all_gather_rows(
        torch.cat([row.float() for row in present], dim=1))
    out, col = [], 0
    for row in rows:
        if row is None:
            out.append(None)
            continue
        other = gathered[:, col:col + row.size(1)].to(row.dtype)
        out.append(torch.cat([other[:offset], row, other[end:]]))
        col += row.size(1)
    return out, images, first
