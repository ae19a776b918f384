# Copyright (c) mmcast contributors. All rights reserved.
"""EoMT's mask annealing: masked attention phased out block by block."""
from typing import List, Optional, Sequence

from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from mmcast.models.detectors import EoMTStudent
from mmcast.utils import unwrap_model

DATA_BATCH = Optional[dict]


@HOOKS.register_module()
class MaskAnnealingHook(Hook):
    """Set the masked-attention probabilities of every :class:`EoMTStudent`
    in the model before each training iteration.

    For block ``j`` of the last ``L`` (window ``[s_j, e_j)``) at iteration
    ``i`` (0-based ``runner.iter``)::

        p_j(i) = 1                                   i < s_j
                 (1 - (i - s_j) / (e_j - s_j))**power  s_j <= i < e_j
                 0                                   i >= e_j

    as in EoMT (Kerssies et al., CVPR 2025), whose blocks anneal one after
    another. A function of ``runner.iter`` alone, so ``--resume`` continues
    the schedule exactly. Logged as ``attn_mask_prob_{j}``.

    Args:
        start_iters (Sequence[int]): ``s_j`` per block with queries, first
            to last.
        end_iters (Sequence[int]): ``e_j > s_j`` per block.
        power (float): Polynomial decay power. Defaults to 0.9 (EoMT's).
    """

    priority = 'NORMAL'

    def __init__(self,
                 start_iters: Sequence[int],
                 end_iters: Sequence[int],
                 power: float = 0.9) -> None:
        if len(start_iters) != len(end_iters) or not start_iters:
            raise ValueError('start_iters and end_iters need one entry per '
                             f'block, got {start_iters} and {end_iters}')
        if any(s < 0 or e <= s for s, e in zip(start_iters, end_iters)):
            raise ValueError('every window needs 0 <= start < end, got '
                             f'{list(zip(start_iters, end_iters))}')
        if power <= 0:
            raise ValueError(f'power must be positive, got {power}')
        self.start_iters = tuple(start_iters)
        self.end_iters = tuple(end_iters)
        self.power = power

    def probs_at(self, cur_iter: int) -> List[float]:
        """The probability of each block at iteration ``cur_iter``."""
        probs = []
        for start, end in zip(self.start_iters, self.end_iters):
            progress = min(max((cur_iter - start) / (end - start), 0.0), 1.0)
            probs.append((1.0 - progress)**self.power)
        return probs

    def before_train(self, runner) -> None:
        """Refuse windows that end after the run: the masked attention
        would still be on when training stops, and predict never uses
        it."""
        if max(self.end_iters) > runner.max_iters:
            raise ValueError(
                f'MaskAnnealingHook: end_iters {list(self.end_iters)} reach '
                f'past train_cfg.max_iters={runner.max_iters}: the model '
                'would end its training with masked attention that its '
                'predict never uses; put every window inside max_iters '
                '(tools/cast_pipeline.py scales them with --iters)')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        """Set the probabilities of ``runner.iter`` on the model."""
        probs = self.probs_at(runner.iter)
        students = [
            m for m in unwrap_model(runner.model).modules()
            if isinstance(m, EoMTStudent)
        ]
        if not students:
            raise RuntimeError('MaskAnnealingHook: the model holds no '
                               'EoMTStudent')
        for student in students:
            student.set_attn_mask_probs(probs)
        for j, prob in enumerate(probs):
            runner.message_hub.update_scalar(f'train/attn_mask_prob_{j}',
                                             prob)

