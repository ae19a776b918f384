# Copyright (c) mmcast contributors. All rights reserved.
"""mmcast: CAST semi-supervised distillation as an MMDetection 3.x plugin.

Importing this package (``custom_imports = dict(imports=['mmcast'])``)
registers every mmcast module into MMDetection's registries and lets
``torch.load(weights_only=True)`` read MMEngine's own checkpoints. With
``MMCAST_CPU_DIST=1`` in the environment it also lets MMEngine's
``pytorch`` launcher run on CPU-only machines (gloo); without it MMEngine
is left as it is (see :mod:`mmcast.utils.cpu_distributed`).
"""
from .utils.checkpoint_safety import allow_mmengine_checkpoint_globals
from .utils.cpu_distributed import (allow_cpu_pytorch_launcher,
                                    cpu_launcher_requested)
# registers work-dir:// with MMEngine's CheckpointLoader
from .utils.checkpoint_loading import load_from_work_dir  # noqa: F401
from .version import __version__, version_info

allow_mmengine_checkpoint_globals()
if cpu_launcher_requested():
    allow_cpu_pytorch_launcher()

from . import (datasets, engine, models, pseudo_labels,  # noqa: E402,F401
               structures)

__all__ = [
    '__version__', 'version_info', 'allow_mmengine_checkpoint_globals',
    'allow_cpu_pytorch_launcher'
]
