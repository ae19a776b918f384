# Copyright (c) mmcast contributors. All rights reserved.
# NYU Depth V2 for SwinMTL: the 1449 densely labelled frames (795 train / 654
# test, 640x480) with depth (uint16 mm) and the 40-class labels (0 = void).
# mmseg's NYUDataset layout plus a parallel label folder under data_root:
#   images/{train,test}/<name>.jpg
#   annotations/{train,test}/<name>.png    depth in millimetres
#   labels40/{train,test}/<name>.png       NYUv2-40 class ids, 0 = void
# Depth is valid over 1e-3 < d < 10 m; evaluation uses the Eigen crop.
dataset_type = 'NYUDepthSegDataset'
data_root = 'data/nyu/'
crop_size = (480, 480)  # (h, w)
max_depth = 10.0

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),  # void (0) -> 255, classes -> 0..39
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
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/train',
            depth_map_path='annotations/train',
            seg_map_path='labels40/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/test',
            depth_map_path='annotations/test',
            seg_map_path='labels40/test'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(
        type='DepthMetric',
        min_depth_eval=1e-3,
        max_depth_eval=max_depth,
        crop_type='nyu_crop')
]
test_evaluator = val_evaluator
