# Semi-supervised COCO instance segmentation (80 classes) for CAST, built like
# semi_cityscapes_instance.py: D_l with ground truth in the "sup" branch, D_u
# with the teacher's offline pseudo-labels in the "unsup" branch, 1:1 per
# batch; geometric augmentation before MultiBranch.
#
# Splits (MMDetection's semi-supervised naming, 1/2/5/10 %, seed 1): the
# standard COCO lists (Unbiased Teacher's, which Guided Distillation uses)
# are not shipped with mmcast, so D_l is a seeded draw, the one labeled set
# of every stage and method (CAST, the baseline, Guided Distillation). The
# split files the shipped COCO configs read:
#   for p in 1 2 5 10; do python tools/split_semi.py \
#       data/coco/annotations/instances_train2017.json \
#       --percent $p --seed 1 --out-dir data/coco/semi_anns; done
# -> semi_anns/instances_train2017.1@{1,2,5,10}.json (+ -unlabeled.json).
# The default is 10 %; tools/cast_pipeline.py --labeled-split 1@1 switches
# every stage; by hand, override the ann files, e.g.
#   --cfg-options \
#     train_dataloader.dataset.datasets.0.ann_file=semi_anns/instances_train2017.1@1.json \
#     ...datasets.1.unlabeled_ann_file=data/coco/semi_anns/instances_train2017.1@1-unlabeled.json \
#     custom_hooks.0.unlabeled_dataset.ann_file=semi_anns/instances_train2017.1@1-unlabeled.json
# (or copy the stage config and set percent below).
#
# Large-scale jitter at 1024 (Mask2Former's COCO recipe): resize by
# 0.1-2.0 of 1024x1024, 1024x1024 crop, flip. No BatchFixedSizePad: batches
# are padded to the model's size divisor only. Test: 1333x800.
# Per-GPU batch 2 (4xb2 = 8 in total, see schedules/cast_90k.py).
_base_ = [
    'mmdet::_base_/datasets/coco_instance.py',
    './semi_instance_branches.py',
]

dataset_type = 'CocoDataset'
data_root = 'data/coco/'
# CocoDataset.METAINFO['classes']
classes = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train',
    'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign',
    'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
    'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag',
    'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
    'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon',
    'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot',
    'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
    'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
    'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear',
    'hair drier', 'toothbrush')
split_seed = 1
percent = 10  # 1, 2, 5 or 10
labeled_ann_file = f'semi_anns/instances_train2017.{split_seed}@{percent}.json'
unlabeled_ann_file = \
    f'semi_anns/instances_train2017.{split_seed}@{percent}-unlabeled.json'
# The offline pseudo-labels of D_u (see semi_cityscapes_instance.py): relative
# to the working directory; the pseudo-labeled dataset has data_root=''.
pseudo_label_file = 'work_dirs/pseudo_labels/coco.json'
train_img_prefix = 'train2017/'
image_size = (1024, 1024)
test_scale = (1333, 800)
batch_size_per_gpu = 2

geometric_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
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
# labeled-only stages (1a, 3, the supervised baseline)
train_pipeline = geometric_pipeline + [dict(type='PackDetInputs')]
sup_pipeline = geometric_pipeline + _base_.sup_pipeline
unsup_pipeline = geometric_pipeline + _base_.unsup_pipeline
# Guided Distillation's unlabeled pool: ALL train images (D_l included),
# without annotations, in the "unsup" branch; its teacher labels them inside
# the step, on this same (geometric) view.
unlabeled_pool_pipeline = [
    t for t in geometric_pipeline
    if t['type'] not in ('LoadAnnotations', 'FilterAnnotations')
] + _base_.unsup_pipeline
# What the teacher sees when it pseudo-labels D_u (no annotations to load).
label_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=test_scale, keep_ratio=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
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
    data_root=data_root,
    ann_file=labeled_ann_file,
    data_prefix=dict(img=train_img_prefix),
    filter_cfg=dict(filter_empty_gt=True, min_size=0),
    pipeline=train_pipeline,
    backend_args={{_base_.backend_args}})
# D_l in the "sup" branch
labeled_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    ann_file=labeled_ann_file,
    data_prefix=dict(img=train_img_prefix),
    filter_cfg=dict(filter_empty_gt=True, min_size=0),
    pipeline=sup_pipeline,
    backend_args={{_base_.backend_args}})
# D_u with pseudo-labels in the "unsup" branch
pseudo_labeled_dataset = dict(
    type='PseudoLabeledDataset',
    data_root='',
    ann_file=pseudo_label_file,
    unlabeled_ann_file=data_root + unlabeled_ann_file,
    metainfo=dict(classes=classes),
    data_prefix=dict(img=data_root + train_img_prefix),
    pipeline=unsup_pipeline,
    backend_args={{_base_.backend_args}})
# D_u as the teacher labels it (PseudoLabelHook's unlabeled_dataset)
unlabeled_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    ann_file=unlabeled_ann_file,
    data_prefix=dict(img=train_img_prefix),
    test_mode=True,
    pipeline=label_pipeline,
    backend_args={{_base_.backend_args}})

# All train images, unlabeled (Guided Distillation's "unsup" branch)
unlabeled_pool_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    ann_file='annotations/instances_train2017.json',
    data_prefix=dict(img=train_img_prefix),
    filter_cfg=dict(filter_empty_gt=False, min_size=0),
    pipeline=unlabeled_pool_pipeline,
    backend_args={{_base_.backend_args}})

train_dataloader = dict(
    _delete_=True,
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
# The labeled-only stages (1a, 3, the supervised baseline) train on D_l
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
    dataset=dict(
        filter_cfg=dict(filter_empty_gt=False, min_size=0),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric=['segm'],
    format_only=False,
    backend_args={{_base_.backend_args}})
test_evaluator = val_evaluator
