# Copyright (c) mmcast contributors. All rights reserved.
from .atomic_io import atomic_dump_json, atomic_open
from .cpu_distributed import allow_cpu_pytorch_launcher
from .checkpoint_safety import (allow_mmengine_checkpoint_globals,
                                mmengine_checkpoint_globals)
from .model_wrappers import unwrap_model

__all__ = [
    'atomic_open', 'atomic_dump_json', 'allow_mmengine_checkpoint_globals',
    'mmengine_checkpoint_globals', 'allow_cpu_pytorch_launcher',
    'unwrap_model'
]
