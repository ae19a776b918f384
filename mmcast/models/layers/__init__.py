# Copyright (c) mmcast contributors. All rights reserved.
from .fused_multihead_attention import FusedMultiheadAttention
from .photometric_strong_view import PhotometricStrongView
from .pixel_projection_head import PixelProjectionHead
from .scale_block import ScaleBlock

__all__ = [
    'FusedMultiheadAttention', 'PhotometricStrongView', 'PixelProjectionHead',
    'ScaleBlock'
]
