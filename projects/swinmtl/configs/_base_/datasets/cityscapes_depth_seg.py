# Copyright (c) mmcast contributors. All rights reserved.
# Cityscapes for SwinMTL: 19 train-id classes (255 = ignore) and metric depth
# from the stereo disparity and the camera files (depth = baseline * fx /
# disparity, 0 = invalid, invalid beyond 80 m). Layout under data_root:
#   leftImg8bit/{train,val}/<city>/*_leftImg8bit.png
#   gtFine/{train,val}/<city>/*_gtFine_labelTrainIds.png
#   disparity/{train,val}/<city>/*_disparity.png
#   camera/{train,val}/<city>/*_camera.json
# from the packages leftImg8bit_trainvaltest.zip, gtFine_trainvaltest.zip
# (train ids: mmseg's tools/dataset_converters/cityscapes.py),
# disparity_trainvaltest.zip and camera_trainvaltest.zip of
# cityscapes-dataset.com.
# Images are resized to half resolution (1024x512) and trained on random
# 480x480 crops; predictions are evaluated at the full resolution of the
# labels and the disparity maps.
dataset_type = 'CityscapesDepthSegDataset'
data_root = 'data/cityscapes/'
image_scale = (1024, 512)  # (w, h)
crop_size = (480, 480)  # (h, w)
max_depth = 80.0

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='LoadCityscapesDepth', max_depth=max_depth),
    # mmseg's Resize/RandomCrop/RandomFlip move every seg_fields entry:
    # labels and depth go with the image (nearest neighbour for both)
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    # colour: brightness, contrast, saturation, hue; then gamma
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomGamma', gamma_range=(0.9, 1.1), prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    # ground truth is loaded after Resize: metrics at the original size
    dict(type='LoadAnnotations'),
    dict(type='LoadCityscapesDepth', max_depth=max_depth),
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
            img_path='leftImg8bit/train',
            seg_map_path='gtFine/train',
            disparity_path='disparity/train',
            camera_path='camera/train'),
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
            img_path='leftImg8bit/val',
            seg_map_path='gtFine/val',
            disparity_path='disparity/val',
            camera_path='camera/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# dataset-level mIoU over the 19 classes, and the depth metrics over
# 1e-3 < gt < 80 m (d1-d3, abs_rel, sq_rel, rmse, rmse_log, log10, silog;
# DepthMetric averages them over images)
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='DepthMetric', min_depth_eval=1e-3, max_depth_eval=max_depth)
]
test_evaluator = val_evaluator
