# Copyright (c) mmcast contributors. All rights reserved.
"""A value computed on rank 0 and shared with every process."""
from typing import Any, Callable

from mmengine.dist import broadcast_object_list, get_dist_info, is_distributed


def from_rank0(compute: Callable[[], Any]) -> Any:
    """``compute()`` on rank 0, broadcast to the other ranks.

    For what only one process should do (read or check files, log) but all
    must act on. The other ranks do not call ``compute``. Outside a
    distributed run it is ``compute()``.
    """
    rank, world_size = get_dist_info()
    value = [compute() if rank == 0 else None]
    if is_distributed() and world_size > 1:
        broadcast_object_list(value, src=0)
    return value[0]
