# Copyright (c) mmcast contributors. All rights reserved.
# The procedural toy street scenes with metric depth and 5 classes (ground,
# sky, box, ball, pole; sky has no depth) of
# projects.swinmtl.swinmtl.datasets.make_toy_depth_dataset, 96x64 images
# (from the repository root):
#   python -c "from projects.swinmtl.swinmtl.datasets import \
#       make_toy_depth_dataset; \
#       make_toy_depth_dataset('data/toy_depth/', height=64, width=96)"
# The root is data/toy_depth/ unless the environment variable
# MMCAST_TOY_DEPTH_ROOT names another one (with a trailing '/'):
#   MMCAST_TOY_DEPTH_ROOT=/tmp/toy_depth/ mim train mmseg <toy config>
dataset_type = 'ToyDepthSegDataset'
data_root = '{{$MMCAST_TOY_DEPTH_ROOT:data/toy_depth/}}'
crop_size = (64, 64)  # (h, w)
max_depth = 80.0

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomGamma', gamma_range=(0.9, 1.1), prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='PackSegInputs')
]

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/train',
            depth_map_path='annotations/train',
            seg_map_path='labels/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/val',
            depth_map_path='annotations/val',
            seg_map_path='labels/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='DepthMetric', min_depth_eval=1e-3, max_depth_eval=max_depth)
]
test_evaluator = val_evaluator
