# Copyright (c) mmcast contributors. All rights reserved.
from .split_half import evaluate_segm, split_half_noise, subset_ap

__all__ = ['evaluate_segm', 'split_half_noise', 'subset_ap']
