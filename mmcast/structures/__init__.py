# Copyright (c) mmcast contributors. All rights reserved.
from .tensor_masks import TensorMasks

__all__ = ['TensorMasks']
