# Copyright (c) mmcast contributors. All rights reserved.
"""MMEngine's ``Runner`` with mmcast's learning-rate rule for
``auto_scale_lr`` and a word on the batch it trains with.

Every mmcast config names it (``runner_type = 'BatchScaledRunner'`` in
``configs/mmcast/_base_/cast_runtime.py`` and ``toy_runtime.py``), so that
MMDetection's ``tools/train.py`` (``mim train``) builds it. At the start of
training it

- refuses a ``MultiSourceSampler`` batch that leaves a source without an
  image (1 image per GPU of a semi-supervised stage: MMDetection's sampler
  would give the slot to the labeled images and the stage would train on
  labels alone; :func:`~mmcast.engine.batch_scaling.semi_batch_problem`);
- with ``auto_scale_lr.enable`` (MMDetection's ``--auto-scale-lr``), scales
  the lr from the recipe's global batch ``auto_scale_lr.base_batch_size``
  to the run's by the square-root rule
  (:func:`~mmcast.engine.batch_scaling.scaled_lr`) instead of MMEngine's
  linear one;
- logs the global batch (GPUs × images per GPU), the lr and the
  iterations, with a warning when the global batch is not the recipe's
  and the lr was not scaled.

Its config text (the log's ``Config:``, the dumped config, the
checkpoints' ``meta.cfg``) is not reformatted by yapf
(:func:`~mmcast.utils.config_text.without_code_formatting`): that took a
quarter to a third of a short stage's time on a CPU.

``Runner.from_cfg`` (which ignores ``runner_type``) gives MMEngine's own
runner, whose ``auto_scale_lr`` is linear.
"""
from typing import Dict, Optional, Union

from mmengine.config import Config
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmcast.utils.config_text import without_code_formatting
from .batch_scaling import LR_RULE, scaled_lr, semi_batch_problem


@RUNNERS.register_module()
class BatchScaledRunner(Runner):
    """MMEngine's ``Runner`` whose ``auto_scale_lr`` follows the
    square-root rule, and which checks and logs the training batch.

    Registered in MMEngine's root registry, so ``runner_type`` finds it
    from every scope.
    """

    @classmethod
    def from_cfg(cls, cfg: Union[Config, dict]) -> 'BatchScaledRunner':
        """Build the runner from ``cfg``, its config text left as
        MMEngine writes it (not reformatted by yapf)."""
        if isinstance(cfg, Config):
            cfg = without_code_formatting(cfg)
        return super().from_cfg(cfg)

    def scale_lr(self, optim_wrapper: OptimWrapper,
                 auto_scale_lr: Optional[Dict] = None) -> None:
        """Check the train batch, scale the lr when ``auto_scale_lr`` is
        enabled (square-root rule) and log the run's batch and lr.

        Called by ``Runner.train`` after the train loop (and its
        dataloader) and the optimiser are built, before the parameter
        schedulers take the optimiser's lr as their base.

        Raises:
            ValueError: A ``MultiSourceSampler`` batch with a source that
                gets no image.
        """
        dataloader = self.train_loop.dataloader
        sampler = getattr(dataloader, 'sampler', None)
        slots = getattr(sampler, 'num_per_source', None)
        if slots is not None:
            problem = semi_batch_problem(sampler.batch_size,
                                         sampler.source_ratio)
            if problem:
                raise ValueError(f'train_dataloader: {problem}')
        per_gpu = dataloader.batch_size or getattr(
            dataloader.batch_sampler, 'batch_size', 1)
        batch = self.world_size * per_gpu
        recipe = (auto_scale_lr or {}).get('base_batch_size')
        enabled = bool((auto_scale_lr or {}).get('enable'))
        wrappers = list(optim_wrapper.values()) if isinstance(
            optim_wrapper, OptimWrapperDict) else [optim_wrapper]
        groups = [g for w in wrappers for g in w.optimizer.param_groups]
        if enabled and recipe:
            factor = scaled_lr(1.0, batch, recipe)
            # the base settings: the "base_lr" MMEngine logs
            for group in groups + [w.base_param_settings for w in wrappers
                                   if w.base_param_settings]:
                group['lr'] = group['lr'] * factor
        lr = max(g['lr'] for g in groups)
        line = (f'global batch {batch} ({self.world_size} GPU(s) x '
                f'{per_gpu}), lr {lr:.4g}, {self.train_loop.max_iters} '
                'iterations')
        if enabled and recipe:
            line += (f' (the recipe\'s lr at batch {recipe}, scaled by the '
                     f'{LR_RULE} rule)')
        self.logger.info(line)
        if recipe and batch != recipe and not enabled:
            self.logger.warning(
                f'the lr {lr:.4g} is the recipe\'s for a global batch of '
                f'{recipe}, this run trains at {batch}: pass --auto-scale-lr '
                f'(auto_scale_lr.enable=True) for '
                f'{scaled_lr(lr, batch, recipe):.4g} ({LR_RULE} rule)')
