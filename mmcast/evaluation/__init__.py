# Copyright (c) mmcast contributors. All rights reserved.
from .results_table import (CLAIMS, NOISE_SPLITS, ROW_NAMES, ROWS,
                            claims_noise, write_results_table)
from .split_half import evaluate_segm, split_half_noise, subset_ap

__all__ = [
    'evaluate_segm', 'split_half_noise', 'subset_ap', 'CLAIMS',
    'NOISE_SPLITS', 'ROW_NAMES', 'ROWS', 'claims_noise',
    'write_results_table'
]
