# Copyright (c) mmcast contributors. All rights reserved.
# Ablation "log depth off": the depth head decodes its sigmoid linearly,
# d = 80 m * sigma, instead of SwinMTL's logarithmic scaling
# d = 1e-3 m * exp(ln(80 / 1e-3) * sigma). Everything else as the full model.
#   mim train mmseg \
#       projects/swinmtl/configs/swinmtl_swinv2-b_cityscapes_linear-depth.py
_base_ = './swinmtl_swinv2-b_cityscapes.py'

model = dict(depth_head=dict(depth_scaling='linear'))
