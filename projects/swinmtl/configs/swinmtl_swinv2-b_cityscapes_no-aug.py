# Copyright (c) mmcast contributors. All rights reserved.
# Ablation "augmentations off": no colour, gamma, flip, random crop or
# in-batch CutMix; the model trains on whole half-resolution images
# (1024x512, padded to multiples of 32). Everything else as the full model.
#   mim train mmseg \
#       projects/swinmtl/configs/swinmtl_swinv2-b_cityscapes_no-aug.py
_base_ = './swinmtl_swinv2-b_cityscapes.py'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='LoadCityscapesDepth', max_depth={{_base_.max_depth}}),
    dict(type='Resize', scale={{_base_.image_scale}}, keep_ratio=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
model = dict(
    data_preprocessor=dict(size=None, size_divisor=32, batch_augments=None))
