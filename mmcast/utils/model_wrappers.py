# Copyright (c) mmcast contributors. All rights reserved.
"""The model inside an MMEngine model wrapper (DDP, FSDP, ...)."""
from typing import Optional

from mmengine.model import is_model_wrapper
from torch import nn


def unwrap_model(model: Optional[nn.Module]) -> Optional[nn.Module]:
    """``model.module`` when ``model`` is a registered MMEngine model
    wrapper (``MMDistributedDataParallel``, ``MMFullyShardedDataParallel``,
    ...), else ``model`` itself (``None`` included)."""
    return model.module if is_model_wrapper(model) else model
