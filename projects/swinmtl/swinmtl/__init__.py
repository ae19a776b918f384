# Copyright (c) mmcast contributors. All rights reserved.
"""SwinMTL: monocular depth + semantic segmentation with a WGAN-GP critic.

Registers into MMSegmentation's registries; configs import it with
``custom_imports = dict(imports=['mmcast.swinmtl'])`` and run under
``mim train mmseg``.
"""
from . import datasets, engine, models  # noqa: F401
