# Copyright (c) mmcast contributors. All rights reserved.
# SwinMTL on NYU Depth V2: joint depth (<= 10 m) and 40-class semantic
# segmentation on the 795 / 654 labelled frames, SwinV2-B from SimMIM
# weights, WGAN-GP critic; batch 4 of 480x480 crops, 20k iterations
# (about 100 epochs).
#
# From the repository root, with it on PYTHONPATH (projects/swinmtl/README.md):
#   mim train mmseg projects/swinmtl/configs/swinmtl_swinv2-b_nyuv2.py
#   mim test mmseg projects/swinmtl/configs/swinmtl_swinv2-b_nyuv2.py \
#       --checkpoint work_dirs/swinmtl_swinv2-b_nyuv2/iter_20000.pth
# Data layout: _base_/datasets/nyu_depth_seg.py. Encoder weights:
# _base_/models/swinmtl_swinv2-b.py. Ablations: critic off and log depth
# off are the Cityscapes *_no-critic.py / *_linear-depth.py child configs
# with this file as their _base_; pre-training off is
# --cfg-options model.backbone.init_cfg=None.
_base_ = [
    './_base_/models/swinmtl_swinv2-b.py',
    './_base_/datasets/nyu_depth_seg.py',
    './_base_/schedules/swinmtl_adamw_critic.py',
    './_base_/swinmtl_runtime.py',
]

model = dict(
    depth_head=dict(max_depth=10.0),
    seg_head=dict(num_classes=40))

max_iters = 20000
# lr 3e-5 -> 5e-4 over the first half, back to 3e-5 with power 0.9
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
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
default_hooks = dict(checkpoint=dict(interval=2000))
