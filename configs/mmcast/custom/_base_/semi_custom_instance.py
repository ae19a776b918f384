# Semi-supervised instance segmentation on your COCO-format dataset
# (../custom_dataset.py: data root, classes, split) at the paper's sizes, as
# ../../_base_/datasets/semi_coco_instance.py does it for COCO: D_l with
# ground truth in the "sup" branch, D_u with the teacher's offline
# pseudo-labels in the "unsup" branch, 1:1 per batch; geometric augmentation
# before MultiBranch, so pseudo-masks stay aligned with the student's view.
# Large-scale jitter at 1024 (resize by 0.1-2.0 of 1024x1024, 1024x1024 crop,
# flip); test 1333x800. Per-GPU batch 2 (4xb2 = 8 in total, see
# ../../_base_/schedules/cast_90k.py).
_base_ = [
    '../custom_dataset.py',
    '../../_base_/datasets/semi_instance_branches.py',
]

dataset_type = 'CocoDataset'
backend_args = None
image_size = (1024, 1024)
test_scale = (1333, 800)
batch_size_per_gpu = 2
# The offline pseudo-labels of D_u: relative to the working directory; stage
# configs name their own (tools/cast_pipeline.py puts them in its work dir).
pseudo_label_file = 'work_dirs/pseudo_labels/custom.json'

geometric_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    # large scale jittering
    dict(
        type='RandomResize',
        scale=image_size,
        ratio_range=(0.1, 2.0),
        resize_type='Resize',
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_size=image_size,
        crop_type='absolute',
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(
        type='FilterAnnotations',
        min_gt_bbox_wh=(1e-5, 1e-5),
        by_mask=True,
        keep_empty=False),
]
# labeled-only stages (1a, 3, the labels-only baseline)
train_pipeline = geometric_pipeline + [dict(type='PackDetInputs')]
sup_pipeline = geometric_pipeline + _base_.sup_pipeline
unsup_pipeline = geometric_pipeline + _base_.unsup_pipeline
# Guided Distillation's unlabeled pool: ALL train images, no annotations.
unlabeled_pool_pipeline = [
    t for t in geometric_pipeline
    if t['type'] not in ('LoadAnnotations', 'FilterAnnotations')
] + _base_.unsup_pipeline
# What the teacher sees when it pseudo-labels D_u.
label_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=test_scale, keep_ratio=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=test_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

# D_l with ground truth, for the labeled-only stages
supervised_dataset = dict(
    type=dataset_type,
    data_root=_base_.data_root,
    metainfo=_base_.metainfo,
    ann_file=_base_.labeled_ann_file,
    data_prefix=dict(img=_base_.img_prefix),
    filter_cfg=dict(filter_empty_gt=True, min_size=0),
    pipeline=train_pipeline,
    backend_args=backend_args)
# D_l in the "sup" branch
labeled_dataset = dict(supervised_dataset, pipeline=sup_pipeline)
# D_u with pseudo-labels in the "unsup" branch; data_root='' so that
# ann_file is exactly PseudoLabelHook's out_file (stage configs set their
# own: dict(_base_.pseudo_labeled_dataset, ann_file=pseudo_label_file)).
pseudo_labeled_dataset = dict(
    type='PseudoLabeledDataset',
    data_root='',
    ann_file=pseudo_label_file,
    unlabeled_ann_file=_base_.unlabeled_ann_path,
    metainfo=_base_.metainfo,
    data_prefix=dict(img=_base_.img_dir),
    pipeline=unsup_pipeline,
    backend_args=backend_args)
# D_u as the teacher labels it (PseudoLabelHook's unlabeled_dataset)
unlabeled_dataset = dict(
    type=dataset_type,
    data_root=_base_.data_root,
    metainfo=_base_.metainfo,
    ann_file=_base_.unlabeled_ann_file,
    data_prefix=dict(img=_base_.img_prefix),
    test_mode=True,
    pipeline=label_pipeline,
    backend_args=backend_args)
# All train images, unlabeled (Guided Distillation's "unsup" branch)
unlabeled_pool_dataset = dict(
    supervised_dataset,
    ann_file=_base_.train_ann_file,
    filter_cfg=dict(filter_empty_gt=False, min_size=0),
    pipeline=unlabeled_pool_pipeline)

train_dataloader = dict(
    batch_size=batch_size_per_gpu,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(
        type='MultiSourceSampler',
        batch_size=batch_size_per_gpu,
        source_ratio=[1, 1]),
    # ignore_keys: PseudoLabeledDataset (a CocoDataset) has COCO's palette;
    # without it mmdet's ConcatDataset.metainfo becomes a list (one dict per
    # dataset), which ends up in the checkpoints' meta.dataset_meta.
    dataset=dict(
        type='ConcatDataset',
        ignore_keys=['palette'],
        datasets=[labeled_dataset, pseudo_labeled_dataset]))
# The labeled-only stages (1a, 3, the labels-only baseline) train on D_l
# alone, with ground truth (no MultiBranch):
#   train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)
supervised_dataloader = dict(
    batch_size=batch_size_per_gpu,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=supervised_dataset)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        supervised_dataset,
        ann_file=_base_.val_ann_file,
        test_mode=True,
        filter_cfg=dict(filter_empty_gt=False, min_size=0),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=_base_.val_ann_path,
    metric=['segm'],
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
