# Copyright (c) mmcast contributors. All rights reserved.
"""mmcast: CAST semi-supervised distillation as an MMDetection 3.x plugin.

Importing this package (``custom_imports = dict(imports=['mmcast'])``)
registers every mmcast module into MMDetection's registries and lets
``torch.load(weights_only=True)`` read MMEngine's own checkpoints.
"""
from .utils.checkpoint_safety import allow_mmengine_checkpoint_globals
from .version import __version__, version_info

allow_mmengine_checkpoint_globals()

from . import (datasets, engine, evaluation, models,  # noqa: E402,F401
               pseudo_labels, structures)

__all__ = ['__version__', 'version_info', 'allow_mmengine_checkpoint_globals']
