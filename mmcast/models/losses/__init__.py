# Copyright (c) mmcast contributors. All rights reserved.
from .gathered_cosine import GatheredCosine
from .instance_aware_pixel_contrast_loss import InstanceAwarePixelContrastLoss
from .pixel_contrast_monitors import PixelContrastMonitors
from .pixel_key_axis import gather_key_axis

__all__ = [
    'GatheredCosine', 'InstanceAwarePixelContrastLoss',
    'PixelContrastMonitors', 'gather_key_axis'
]
