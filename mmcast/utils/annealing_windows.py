# Copyright (c) mmcast contributors. All rights reserved.
"""The windows of EoMT's mask annealing at another run length."""
from typing import List, Sequence, Tuple


def scaled_windows(start_iters: Sequence[int], end_iters: Sequence[int],
                   own_iters: int, max_iters: int
                   ) -> Tuple[List[int], List[int]]:
    """The windows of a :class:`~mmcast.engine.hooks.MaskAnnealingHook`
    written for a run of ``own_iters`` scaled to one of ``max_iters``: in
    proportion, each at least one iteration long and closed by
    ``max_iters``, so that the shortened or lengthened run still ends
    without masked attention."""
    starts, ends = [], []
    for start, end in zip(start_iters, end_iters):
        start = min(round(start * max_iters / own_iters), max_iters - 1)
        starts.append(start)
        ends.append(min(max(round(end * max_iters / own_iters), start + 1),
                        max_iters))
    return starts, ends
