# Copyright (c) mmcast contributors. All rights reserved.
from .clamped_maskformer_fusion_head import ClampedMaskFormerFusionHead

__all__ = ['ClampedMaskFormerFusionHead']
