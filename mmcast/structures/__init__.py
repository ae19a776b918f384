# Copyright (c) mmcast contributors. All rights reserved.
from .mask_boxes import masks_to_bboxes
from .tensor_masks import TensorMasks

__all__ = ['TensorMasks', 'masks_to_bboxes']
