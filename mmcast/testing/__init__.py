# Copyright (c) mmcast contributors. All rights reserved.
"""Helpers for tests, the toy pipeline and the demo (no network needed)."""
from .real_layout_data import (COCO_CATEGORY_IDS, DATA_ROOTS,
                               write_real_layout_dataset)
from .real_size_assets import (write_bert_base, write_grounding_dino_swin_l,
                               write_sam2_hiera_l, write_teacher0)
from .runner_state import forget_visualizers
from .tiny_teachers import (CITYSCAPES_CLASSES, build_tiny_teacher_assets,
                            tiny_box_prompted_teacher_cfg,
                            tiny_grounding_dino_cfg, tiny_sam2_cfg,
                            write_tiny_bert, write_tiny_sam2_checkpoint)

__all__ = [
    'COCO_CATEGORY_IDS', 'DATA_ROOTS', 'write_real_layout_dataset',
    'write_bert_base', 'write_grounding_dino_swin_l', 'write_sam2_hiera_l',
    'write_teacher0', 'forget_visualizers',
    'CITYSCAPES_CLASSES', 'build_tiny_teacher_assets',
    'tiny_box_prompted_teacher_cfg', 'tiny_grounding_dino_cfg',
    'tiny_sam2_cfg', 'write_tiny_bert', 'write_tiny_sam2_checkpoint'
]
