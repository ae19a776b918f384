# Copyright (c) mmcast contributors. All rights reserved.
from .mask_boxes import bboxes_of_extents, masks_to_bboxes
from .tensor_masks import TensorMasks

__all__ = ['TensorMasks', 'bboxes_of_extents', 'masks_to_bboxes']
