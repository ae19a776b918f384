# Copyright (c) mmcast contributors. All rights reserved.
from .lean_maskformer_fusion_head import (LeanMaskFormerFusionHead,
                                          lean_instance_results, score_floor)

__all__ = ['LeanMaskFormerFusionHead', 'lean_instance_results', 'score_floor']
