# Copyright (c) mmcast contributors. All rights reserved.
from .cast_mask2former_head import CASTMask2FormerHead
from .fp32_loss_mask2former_head import FP32LossMask2FormerHead
from .mask2former_criterion import Mask2FormerCriterion

__all__ = [
    'CASTMask2FormerHead', 'FP32LossMask2FormerHead', 'Mask2FormerCriterion'
]
