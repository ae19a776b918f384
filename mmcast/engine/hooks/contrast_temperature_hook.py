# Copyright (c) mmcast contributors. All rights reserved.
"""Linear annealing of the pixel-contrast temperature T."""
from typing import Optional

from mmengine.hooks import Hook
from mmdet.registry import HOOKS

from mmcast.models.losses import InstanceAwarePixelContrastLoss
from mmcast.utils import unwrap_model

DATA_BATCH = Optional[dict]


@HOOKS.register_module()
class ContrastTemperatureHook(Hook):
    """Anneal T of every ``InstanceAwarePixelContrastLoss`` in the model.

    ``T(i) = start + (end - start) · i / (max_iters - 1)`` for iteration
    ``i`` (0-based), as in the authors' code (0.3 → 0.07 over the whole
    schedule). T is a function of the runner's iteration alone, so ``--resume``
    continues the schedule exactly where it stopped. The current value is
    logged as ``pxl_temperature``.

    Args:
        start (float): T at the first iteration. Defaults to 0.3.
        end (float): T at the last iteration. Defaults to 0.07.
    """

    priority = 'NORMAL'

    def __init__(self, start: float = 0.3, end: float = 0.07) -> None:
        if start <= 0 or end <= 0:
            raise ValueError(
                f'temperatures must be positive, got start={start}, end={end}')
        self.start = start
        self.end = end

    def temperature_at(self, cur_iter: int, max_iters: int) -> float:
        """The temperature at iteration ``cur_iter`` of ``max_iters``."""
        progress = min(max(cur_iter / max(max_iters - 1, 1), 0.0), 1.0)
        return self.start + (self.end - self.start) * progress

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        """Set T on the model's contrastive losses before each iteration."""
        model = unwrap_model(runner.model)
        temperature = self.temperature_at(runner.iter, runner.max_iters)
        for module in model.modules():
            if isinstance(module, InstanceAwarePixelContrastLoss):
                module.temperature = temperature
        runner.message_hub.update_scalar('train/pxl_temperature', temperature)
