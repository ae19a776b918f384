# The procedurally generated toy street scenes (tools/make_toy_dataset.py) in
# the Cityscapes layout, read exactly like Cityscapes: CityscapesDataset on the
# COCO-format json, evaluated by CocoMetric and CityScapesMetric.
# The root is data/toy/ unless the environment variable MMCAST_TOY_ROOT names
# another one (with a trailing '/'; tools/cast_pipeline.py --data-root sets it
# for its stages, and frozen teachers built from a config path see it too):
#   MMCAST_TOY_ROOT=/tmp/toy/ mim train mmdet configs/mmcast/cast/cast-adapt-teacher_mask2former-r34_1xb4-150it_toy-semi-10p.py
_base_ = 'mmdet::_base_/datasets/cityscapes_instance.py'

data_root = '{{$MMCAST_TOY_ROOT:data/toy/}}'
image_scale = (192, 96)  # (w, h)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='RandomResize',
        scale=image_scale,
        ratio_range=(0.8, 1.25),
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type={{_base_.dataset_type}},
        data_root=data_root,
        ann_file='annotations/instancesonly_filtered_gtFine_train.json',
        data_prefix=dict(img='leftImg8bit/train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline,
        backend_args={{_base_.backend_args}}))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        filter_cfg=dict(filter_empty_gt=False, min_size=0),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = [
    dict(
        type='CocoMetric',
        ann_file=data_root +
        'annotations/instancesonly_filtered_gtFine_val.json',
        metric=['segm'],
        backend_args={{_base_.backend_args}}),
    dict(
        type='CityScapesMetric',
        seg_prefix=data_root + 'gtFine/val',
        # no folder of its own: MetricOutputHook (the runtime's
        # default_hooks) writes its files into <work_dir>/cityscapes_metric/
        outfile_prefix=None,
        backend_args={{_base_.backend_args}})
]
test_evaluator = val_evaluator
