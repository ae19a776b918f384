# Copyright (c) mmcast contributors. All rights reserved.
"""All-gather of row blocks whose number of rows differs between processes."""
from typing import List, Tuple

import torch
from mmengine import dist
from torch import Tensor


def all_gather_rows(rows: Tensor) -> Tuple[Tensor, List[int]]:
    """Concatenate the (n_r, C) ``rows`` of every process in rank order.

    ``torch.distributed.all_gather`` needs tensors of one shape; the rows are
    padded to the largest n_r, gathered and trimmed. Nothing is
    differentiable: the result is detached. Outside a distributed run the
    rows come back unchanged (detached).

    Args:
        rows (Tensor): (n_r, C) rows of this process; C, dtype and device
            must agree across processes.

    Returns:
        tuple[Tensor, list[int]]: (sum_r n_r, C) rows, and n_r per rank.
    """
    rows = rows.detach()
    if dist.get_world_size() == 1:
        return rows, [rows.size(0)]
    count = torch.tensor([rows.size(0)], device=rows.device)
    counts = [int(c) for c in dist.all_gather(count)]
    padded = rows.new_zeros((max(counts), ) + rows.shape[1:])
    padded[:rows.size(0)] = rows
    gathered = dist.all_gather(padded)
    return torch.cat([g[:n] for g, n in zip(gathered, counts)]), counts
