# Copyright (c) mmcast contributors. All rights reserved.
# Toy ablation "augmentations off": no colour, gamma, flip, random crop or
# in-batch CutMix; whole 96x64 images.
#   mim train mmseg projects/swinmtl/configs/swinmtl_swinv2-tiny_toy_no-aug.py
_base_ = './swinmtl_swinv2-tiny_toy.py'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
model = dict(
    data_preprocessor=dict(size=None, size_divisor=32, batch_augments=None))
