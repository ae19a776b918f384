# Copyright (c) mmcast contributors. All rights reserved.
from .dinov2_multilevel import DINOv2MultiLevel

__all__ = ['DINOv2MultiLevel']
