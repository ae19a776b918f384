# Copyright (c) mmcast contributors. All rights reserved.
from .fp32_hungarian_assigner import FP32HungarianAssigner

__all__ = ['FP32HungarianAssigner']
