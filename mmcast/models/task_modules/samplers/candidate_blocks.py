# Copyright (c) mmcast contributors. All rights reserved.
"""Candidate blocks: the rows of the key axis that an anchor draws from."""
from typing import Tuple

import torch
from torch import Tensor

# (start, end) row ranges of the key axis, in order; a draw sees them as one
# concatenated candidate axis.
Blocks = Tuple[Tuple[int, int], ...]


def columns_to_keys(cols: Tensor, blocks: Blocks) -> Tensor:
    """Map positions on the concatenated candidate blocks to key rows.

    Args:
        cols (Tensor): (c, R) long positions in ``[0, sum(end - start))``.
        blocks (tuple): (start, end) key rows of the candidates.

    Returns:
        Tensor: (c, R) long rows of the key axis.
    """
    keys = cols + blocks[0][0]
    seen = blocks[0][1] - blocks[0][0]
    for s, e in blocks[1:]:
        keys = torch.where(cols >= seen, cols - seen + s, keys)
        seen += e - s
    return keys
