# Copyright (c) mmcast contributors. All rights reserved.
# Toy ablation "log depth off": d = 80 m * sigma instead of the logarithmic
# depth scaling.
#   mim train mmseg \
#       projects/swinmtl/configs/swinmtl_swinv2-tiny_toy_linear-depth.py
_base_ = './swinmtl_swinv2-tiny_toy.py'

model = dict(depth_head=dict(depth_scaling='linear'))
