# Semi-supervised Cityscapes instance segmentation (8 thing classes) for CAST
# and Guided Distillation: the labeled split D_l with ground truth (branch
# "sup") and the unlabeled rest D_u with the teacher's offline pseudo-labels
# (branch "unsup"), mixed 1:1 in every batch by MultiSourceSampler. The
# geometric augmentation and the colour augmentation run before MultiBranch,
# on image and masks together, so pseudo-masks stay aligned with the
# student's view.
#
# D_l: Guided Distillation's published 10 % list (296 of the 2975 train
# images; shipped in mmcast/datasets/splits/cityscapes/perc_10.txt), the one
# labeled set of every stage and method (CAST 1a/1b/2/3, the labels-only
# baseline, Guided Distillation). The split files every shipped Cityscapes
# config reads, all written by one command:
#   python tools/split_semi.py \
#       data/cityscapes/annotations/instancesonly_filtered_gtFine_train.json \
#       --image-list cityscapes/perc_10 \
#       --out-dir data/cityscapes/annotations/semi
# -> annotations/semi/instancesonly_filtered_gtFine_train.1@perc_10.json (D_l)
#    and ...1@perc_10-unlabeled.json (D_u, CAST's stages 1b and 2); Guided
#    Distillation's unlabeled pool is the full train json itself.
# Other splits: --image-list cityscapes/perc_5 (perc_20, perc_30), or a seeded
# draw (--percent 10 --seed 1 -> ...1@10.json); tools/cast_pipeline.py
# --labeled-split 1@perc_5 (or 1@10) switches every stage to it; by hand, set
# labeled_split / split_seed below.
#
# Training crops 512x1024 (spec "Student schedule"): random resize of the
# 2048x1024 image by 0.5-2.0, random 512x1024 crop, SSD colour augmentation
# (Mask2Former's Cityscapes recipe, COLOR_AUG_SSD), flip. Test: 2048x1024.
# Per-GPU batch 2 (4xb2 = 8 in total, see schedules/cast_90k.py).
_base_ = [
    'mmdet::_base_/datasets/cityscapes_instance.py',
    './semi_instance_branches.py',
]

dataset_type = 'CityscapesDataset'
data_root = 'data/cityscapes/'
classes = ('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
           'bicycle')
# D_l: a published list (perc_5, perc_10, perc_20, perc_30) or a percentage
# of a seeded draw ('10' with split_seed 1 -> 1@10); a list's files carry
# the default seed 1 of tools/split_semi.py in their name
labeled_split = 'perc_10'
split_seed = 1
split_stem = f'annotations/semi/instancesonly_filtered_gtFine_train.{split_seed}@{labeled_split}'  # noqa: E501
labeled_ann_file = f'{split_stem}.json'
unlabeled_ann_file = f'{split_stem}-unlabeled.json'
# The offline pseudo-labels of D_u (written by PseudoLabelHook). Stage
# configs point it at their work dir. Relative to the working directory,
# NOT to data_root: the pseudo-labeled dataset has data_root='' (its image
# folder and unlabeled json carry the data root instead) so that the
# dataset's ann_file is exactly the hook's out_file.
pseudo_label_file = 'work_dirs/pseudo_labels/cityscapes.json'
train_img_prefix = 'leftImg8bit/train/'
image_scale = (2048, 1024)  # (w, h)
crop_size = (1024, 512)  # (w, h) as RandomCrop takes it: 512x1024 crops
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

# All train images, unlabeled (Guided Distillation's "unsup" branch)
unlabeled_pool_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    ann_file='annotations/instancesonly_filtered_gtFine_train.json',
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
