# Copyright (c) mmcast contributors. All rights reserved.
from .dinov2_multilevel import DINOv2MultiLevel
from .dinov3_multilevel import DINOv3MultiLevel, build_dinov3_vit

__all__ = ['DINOv2MultiLevel', 'DINOv3MultiLevel', 'build_dinov3_vit']
