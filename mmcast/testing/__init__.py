# Copyright (c) mmcast contributors. All rights reserved.
"""Helpers for tests, the toy pipeline and the demo (no network needed)."""
from .tiny_teachers import (CITYSCAPES_CLASSES, build_tiny_teacher_assets,
                            tiny_box_prompted_teacher_cfg,
                            tiny_grounding_dino_cfg, tiny_sam2_cfg,
                            write_tiny_bert, write_tiny_sam2_checkpoint)

__all__ = [
    'CITYSCAPES_CLASSES', 'build_tiny_teacher_assets',
    'tiny_box_prompted_teacher_cfg', 'tiny_grounding_dino_cfg',
    'tiny_sam2_cfg', 'write_tiny_bert', 'write_tiny_sam2_checkpoint'
]
