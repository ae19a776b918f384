# Copyright (c) mmcast contributors. All rights reserved.
from .cast_mask2former_head import CASTMask2FormerHead

__all__ = ['CASTMask2FormerHead']
