# Copyright (c) mmcast contributors. All rights reserved.
from .cutmix_patches import CutMixPatches
from .data_preprocessor import MultiTaskSegDataPreProcessor
from .depth_head import SwinMTLDepthHead
from .seg_head import SwinMTLSegHead
from .silog_depth_loss import SiLogDepthLoss
from .swinmtl import SwinMTL
from .swinmtl_decoder import SwinMTLDecoder
from .swinmtl_generator import SwinMTLGenerator
# importing swinv2_converter registers the microsoft-swinv2:// checkpoint
# scheme of the real-size configs' encoder weights
from .swinv2_converter import (MICROSOFT_SWINV2_SCHEME,
                               swinv2_microsoft_to_mmpretrain,
                               unfold_reduction_order)
from .wgan_gp_critic import (PatchGANCritic, critic_input_gradient,
                             gradient_penalty)

__all__ = [
    'SwinMTL', 'SwinMTLGenerator', 'SwinMTLDecoder', 'SwinMTLDepthHead',
    'SwinMTLSegHead', 'SiLogDepthLoss', 'PatchGANCritic',
    'critic_input_gradient', 'gradient_penalty', 'CutMixPatches',
    'MultiTaskSegDataPreProcessor', 'MICROSOFT_SWINV2_SCHEME',
    'swinv2_microsoft_to_mmpretrain', 'unfold_reduction_order'
]
