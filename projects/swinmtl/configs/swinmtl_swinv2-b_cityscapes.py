# Copyright (c) mmcast contributors. All rights reserved.
# SwinMTL on Cityscapes: joint depth (from stereo disparity, <= 80 m) and
# 19-class semantic segmentation, SwinV2-B from SimMIM weights, WGAN-GP
# critic; batch 4 of 480x480 crops, 80k iterations.
#
# From the repository root, with it on PYTHONPATH (projects/swinmtl/README.md):
#   mim train mmseg projects/swinmtl/configs/swinmtl_swinv2-b_cityscapes.py
#   mim test mmseg projects/swinmtl/configs/swinmtl_swinv2-b_cityscapes.py \
#       --checkpoint work_dirs/swinmtl_swinv2-b_cityscapes/iter_80000.pth
# (mim runs MMSegmentation's tools/train.py and tools/test.py; `--resume`
# continues the last checkpoint of the work dir, both optimizers included.)
# Data layout: _base_/datasets/cityscapes_depth_seg.py. Encoder weights:
# _base_/models/swinmtl_swinv2-b.py.
#
# The paper's ablations:
#   critic off:    swinmtl_swinv2-b_cityscapes_no-critic.py
#   log depth off: swinmtl_swinv2-b_cityscapes_linear-depth.py
#   augmentations off: swinmtl_swinv2-b_cityscapes_no-aug.py
#   pre-training off: --cfg-options model.backbone.init_cfg=None
_base_ = [
    './_base_/models/swinmtl_swinv2-b.py',
    './_base_/datasets/cityscapes_depth_seg.py',
    './_base_/schedules/swinmtl_adamw_critic.py',
    './_base_/swinmtl_runtime.py',
]

max_iters = 80000
# lr rises from 3e-5 to 5e-4 over the first half and falls back to 3e-5
# with power 0.9 (SwinMTL's schedule); the critic keeps a constant lr. The
# runner takes one scheduler list per optimizer of the OptimWrapperDict.
param_scheduler = dict(
    generator=[
        dict(
            type='LinearLR',
            start_factor=3e-5 / 5e-4,
            by_epoch=False,
            begin=0,
            end=max_iters // 2),
        dict(
            type='PolyLR',
            power=0.9,
            eta_min=3e-5,
            by_epoch=False,
            begin=max_iters // 2,
            end=max_iters)
    ],
    critic=[])
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
