# Copyright (c) mmcast contributors. All rights reserved.
"""One optimizer per submodule, for adversarial training."""
from typing import Optional

import torch.nn as nn
from mmengine.optim import OptimWrapperDict

from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS

from mmcast.utils import unwrap_model


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MultiOptimWrapperConstructor:
    """Build an ``OptimWrapperDict`` with one optimizer per submodule.

    MMEngine 0.10.7 has ``OptimWrapperDict`` but no constructor that builds
    one from a config (mmagic has one under this name). Every key of the
    config names a submodule of the model (``model.<key>``); its value is an
    ordinary optim wrapper config, which may carry its own ``constructor``
    and ``paramwise_cfg``::

        optim_wrapper = dict(
            constructor='MultiOptimWrapperConstructor',
            generator=dict(
                type='OptimWrapper',
                optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.05),
                constructor=  # layer-wise decay, SwinMTLGenerator's layers
                'mmpretrain.LearningRateDecayOptimWrapperConstructor',
                paramwise_cfg=dict(layer_decay_rate=0.9)),
            critic=dict(
                type='OptimWrapper',
                optimizer=dict(type='Adam', lr=1e-4, betas=(0.5, 0.9))))

    MMEngine's runner then wants the schedulers per optimizer, every name
    present: ``param_scheduler=dict(generator=[...], critic=[])``.

    Args:
        optim_wrapper_cfg (dict): ``{submodule name: optim wrapper config}``.
        paramwise_cfg (dict, optional): Must be None: give it inside the
            config of each submodule.
    """

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        if paramwise_cfg is not None:
            raise ValueError(
                'MultiOptimWrapperConstructor takes paramwise_cfg inside the '
                'config of each submodule, not at the top level; got '
                f'{paramwise_cfg}')
        if not optim_wrapper_cfg:
            raise ValueError('MultiOptimWrapperConstructor needs at least '
                             'one "<submodule>=dict(optimizer=...)" entry')
        self.constructors = {}
        for name, cfg in optim_wrapper_cfg.items():
            if not isinstance(cfg, dict) or 'optimizer' not in cfg:
                raise ValueError(
                    f'optim_wrapper.{name} must be an optim wrapper config '
                    f'with an "optimizer", got {cfg!r}')
            cfg = dict(cfg)
            constructor = cfg.pop('constructor',
                                  'DefaultOptimWrapperConstructor')
            sub_paramwise_cfg = cfg.pop('paramwise_cfg', None)
            self.constructors[name] = OPTIM_WRAPPER_CONSTRUCTORS.build(
                dict(
                    type=constructor,
                    optim_wrapper_cfg=cfg,
                    paramwise_cfg=sub_paramwise_cfg))

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        """Build the optimizers.

        Args:
            model (nn.Module): The model, possibly wrapped (DDP).

        Returns:
            OptimWrapperDict: One optim wrapper per configured submodule.
        """
        model = unwrap_model(model)
        wrappers = {}
        for name, constructor in self.constructors.items():
            module = unwrap_model(getattr(model, name, None))
            if not isinstance(module, nn.Module):
                raise ValueError(
                    f'optim_wrapper.{name}: {type(model).__name__} has no '
                    f'submodule {name!r} (got {type(module).__name__})')
            wrappers[name] = constructor(module)
        return OptimWrapperDict(**wrappers)
