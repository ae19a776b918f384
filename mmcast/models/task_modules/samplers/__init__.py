# Copyright (c) mmcast contributors. All rights reserved.
from .candidate_blocks import columns_to_keys
from .exact_negative_draw import exact_negative_draw
from .pixel_contrast_negative_sampler import (PIXEL_FEATURES,
                                              PixelContrastNegativeSampler)
from .rejection_negative_draw import rejection_negative_draw

__all__ = [
    'PIXEL_FEATURES', 'PixelContrastNegativeSampler', 'columns_to_keys',
    'exact_negative_draw', 'rejection_negative_draw'
]
