# Copyright (c) mmcast contributors. All rights reserved.
from .photometric_strong_view import PhotometricStrongView
from .pixel_projection_head import PixelProjectionHead

__all__ = ['PhotometricStrongView', 'PixelProjectionHead']
