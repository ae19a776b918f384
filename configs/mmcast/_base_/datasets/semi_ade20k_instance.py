# Semi-supervised ADE20K instance segmentation (100 thing classes) for CAST,
# built like semi_cityscapes_instance.py: D_l with ground truth in the "sup"
# branch, D_u with the teacher's offline pseudo-labels in the "unsup" branch,
# 1:1 per batch; geometric and colour augmentation before MultiBranch.
#
# Annotations: MMDetection's ADE20K instance jsons
# (tools/dataset_converters/ade20k2coco.py writes ade20k_instance_train.json
# and ade20k_instance_val.json into data/ADEChallengeData2016/). ADE20K has
# no published semi-supervised list (CAST's authors did not publish theirs):
# D_l is a seeded 10 % draw (seed 1), the one labeled set of every stage.
# The split files every shipped ADE20K config reads, written by
#   python tools/split_semi.py \
#       data/ADEChallengeData2016/ade20k_instance_train.json \
#       --percent 10 --seed 1 --out-dir data/ADEChallengeData2016/semi_anns
# -> semi_anns/ade20k_instance_train.1@10.json (D_l) and
#    ...1@10-unlabeled.json (D_u). Another seed or share: write it the same
# way and run tools/cast_pipeline.py with --labeled-split SEED@PERCENT.
#
# Training crops 630x630 (spec: the paper's ADE20K crop; 630 = 14 x 45 patches
# of DINOv2). The DINOv2-S student pads batches to a multiple of 28 (its
# stride-28 level), so a 630x630 batch becomes 644x644 with zero padding.
# Scale jitter as Mask2Former's ADE20K instance recipe: short side
# 640 x (0.5 ... 2.0), long side <= 2560; SSD colour augmentation
# (COLOR_AUG_SSD of that recipe). Test: short side 640.
# Per-GPU batch 2 (4xb2 = 8 in total, see schedules/cast_90k.py).
_base_ = [
    'mmdet::_base_/datasets/ade20k_instance.py',
    './semi_instance_branches.py',
]

dataset_type = 'ADE20KInstanceDataset'
data_root = 'data/ADEChallengeData2016/'
# ADE20KInstanceDataset.METAINFO['classes'] (the dataset's order)
classes = (
    'bed', 'windowpane', 'cabinet', 'person', 'door', 'table', 'curtain',
    'chair', 'car', 'painting', 'sofa', 'shelf', 'mirror', 'armchair', 'seat',
    'fence', 'desk', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion',
    'box', 'column', 'signboard', 'chest of drawers', 'counter', 'sink',
    'fireplace', 'refrigerator', 'stairs', 'case', 'pool table', 'pillow',
    'screen door', 'bookcase', 'coffee table', 'toilet', 'flower', 'book',
    'bench', 'countertop', 'stove', 'palm', 'kitchen island', 'computer',
    'swivel chair', 'boat', 'arcade machine', 'bus', 'towel', 'light',
    'truck', 'chandelier', 'awning', 'streetlight', 'booth',
    'television receiver', 'airplane', 'apparel', 'pole', 'bannister',
    'ottoman', 'bottle', 'van', 'ship', 'fountain', 'washer', 'plaything',
    'stool', 'barrel', 'basket', 'bag', 'minibike', 'oven', 'ball', 'food',
    'step', 'trade name', 'microwave', 'pot', 'animal', 'bicycle',
    'dishwasher', 'screen', 'sculpture', 'hood', 'sconce', 'vase',
    'traffic light', 'tray', 'ashcan', 'fan', 'plate', 'monitor',
    'bulletin board', 'radiator', 'glass', 'clock', 'flag')
labeled_ann_file = 'semi_anns/ade20k_instance_train.1@10.json'
unlabeled_ann_file = 'semi_anns/ade20k_instance_train.1@10-unlabeled.json'
# The offline pseudo-labels of D_u (see semi_cityscapes_instance.py): relative
# to the working directory; the pseudo-labeled dataset has data_root=''.
pseudo_label_file = 'work_dirs/pseudo_labels/ade20k.json'
train_img_prefix = 'images/training/'
image_scale = (2560, 640)  # (w, h): long side <= 2560, short side 640
crop_size = (630, 630)  # (w, h)
batch_size_per_gpu = 2

geometric_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='RandomResize',
        scale=image_scale,
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_size=crop_size,
        crop_type='absolute',
        recompute_bbox=True,
        allow_negative_crop=True),
    # Detectron2's ColorAugSSDTransform: brightness +-32, contrast and
    # saturation x0.5-1.5, hue +-18, each with probability 0.5
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomFlip', prob=0.5),
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
# What the teacher sees when it pseudo-labels D_u (no annotations to load).
label_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
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

# (mmdet's ade20k_instance.py defines no train_dataloader: nothing to
# _delete_, and a leftover _delete_ key would reach the DataLoader)
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
    ann_file=data_root + 'ade20k_instance_val.json',
    metric=['segm'],
    format_only=False,
    backend_args={{_base_.backend_args}})
test_evaluator = val_evaluator
