# Copyright (c) mmcast contributors. All rights reserved.
from .dpt_pixel_decoder import (DPTPixelDecoder, FeatureFusionBlock,
                                MultiLevelFPNPixelDecoder, ResidualConvUnit)

__all__ = [
    'DPTPixelDecoder', 'MultiLevelFPNPixelDecoder', 'FeatureFusionBlock',
    'ResidualConvUnit'
]
