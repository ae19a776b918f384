# Copyright (c) mmcast contributors. All rights reserved.
"""Helpers for tests and the real-size smoke runs (no network needed), and
the reference L_pxl that the tests and the benchmark check against."""
from .real_layout_data import (COCO_CATEGORY_IDS, DATA_ROOTS,
                               write_real_layout_dataset)
from .real_size_assets import (write_bert_base, write_grounding_dino_swin_l,
                               write_sam2_hiera_l, write_teacher0)
from .reference_pixel_contrast import (authors_loss, authors_negatives,
                                       authors_step)
from .runner_state import forget_visualizers

__all__ = [
    'COCO_CATEGORY_IDS', 'DATA_ROOTS', 'write_real_layout_dataset',
    'write_bert_base', 'write_grounding_dino_swin_l', 'write_sam2_hiera_l',
    'write_teacher0', 'forget_visualizers', 'authors_negatives',
    'authors_loss', 'authors_step'
]
