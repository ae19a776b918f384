# Copyright (c) mmcast contributors. All rights reserved.
from .instance_aware_pixel_contrast_loss import InstanceAwarePixelContrastLoss

__all__ = ['InstanceAwarePixelContrastLoss']
