# Copyright (c) mmcast contributors. All rights reserved.
"""SwinMTL: monocular depth + semantic segmentation with a WGAN-GP critic.

Registers into MMSegmentation's registries; the project's configs import it
with ``custom_imports = dict(imports=['projects.swinmtl.swinmtl'])`` (the
repository root on ``PYTHONPATH``) and run under ``mim train mmseg``.
"""
from . import datasets, engine, models  # noqa: F401
