# The toy students' stand-in for a foundation-model backbone: the student's
# quarter-width R-18 Mask2Former pre-trained on the source corpus like θ_T^0
# (in the paper the student's backbone is itself a foundation model,
# DINOv2-S). With `tools/cast_pipeline.py toy --student-init
# source-pretrained` every student (stage 2, the labels-only baseline,
# Guided Distillation) starts from its backbone; by default they start from
# random weights.
#   mim train mmdet configs/mmcast/toy/mask2former_r18_source-pretrain_toy.py
_base_ = './mask2former_r34_source-pretrain_toy.py'

model = dict(
    backbone=dict(depth=18, base_channels=16),
    panoptic_head=dict(
        in_channels=[16, 32, 64, 128], projection_head=dict(in_channels=64)))
randomness = dict(seed=0)
