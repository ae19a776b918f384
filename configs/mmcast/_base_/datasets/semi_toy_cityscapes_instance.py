# Semi-supervised toy data: labeled split D_l with ground truth (branch
# "sup") and the unlabeled rest D_u with the teacher's offline pseudo-labels
# (branch "unsup"), mixed 1:1 in every batch by MultiSourceSampler. All
# geometric augmentation runs before MultiBranch, on image and masks together,
# so pseudo-masks stay aligned with the student's view.
# The data root follows MMCAST_TOY_ROOT as in toy_cityscapes_instance.py.
_base_ = [
    './toy_cityscapes_instance.py',
    './semi_instance_branches.py',
]

data_root = '{{$MMCAST_TOY_ROOT:data/toy/}}'
labeled_ann_file = 'annotations/semi/instancesonly_filtered_gtFine_train.1@10.json'
unlabeled_ann_file = 'annotations/semi/instancesonly_filtered_gtFine_train.1@10-unlabeled.json'
pseudo_label_file = 'work_dirs/pseudo_labels/toy.json'
classes = ('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
           'bicycle')


geometric_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='RandomResize',
        scale={{_base_.image_scale}},
        ratio_range=(0.8, 1.25),
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='FilterAnnotations',
        min_gt_bbox_wh=(1e-5, 1e-5),
        by_mask=True,
        keep_empty=False),
]
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
    dict(type='Resize', scale={{_base_.image_scale}}, keep_ratio=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

labeled_dataset = dict(
    type={{_base_.dataset_type}},
    data_root=data_root,
    ann_file=labeled_ann_file,
    data_prefix=dict(img='leftImg8bit/train/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=0),
    pipeline=sup_pipeline)
# data_root='' so that ann_file (the pseudo-label json, a work-dir path) is
# exactly PseudoLabelHook's out_file; the data paths carry the data root.
pseudo_labeled_dataset = dict(
    type='PseudoLabeledDataset',
    data_root='',
    ann_file=pseudo_label_file,
    unlabeled_ann_file=data_root + unlabeled_ann_file,
    metainfo=dict(classes=classes),
    data_prefix=dict(img=data_root + 'leftImg8bit/train/'),
    pipeline=unsup_pipeline)
unlabeled_dataset = dict(
    type={{_base_.dataset_type}},
    data_root=data_root,
    ann_file=unlabeled_ann_file,
    data_prefix=dict(img='leftImg8bit/train/'),
    test_mode=True,
    pipeline=label_pipeline)
# D_l as the teacher labels it, to measure the pseudo-labels' precision and
# recall against D_l's ground truth (PseudoLabelHook's quality_dataset)
labeled_quality_dataset = dict(unlabeled_dataset, ann_file=labeled_ann_file)

# All train images, unlabeled (Guided Distillation's "unsup" branch)
unlabeled_pool_dataset = dict(
    type={{_base_.dataset_type}},
    data_root=data_root,
    ann_file='annotations/instancesonly_filtered_gtFine_train.json',
    data_prefix=dict(img='leftImg8bit/train/'),
    filter_cfg=dict(filter_empty_gt=False, min_size=0),
    pipeline=unlabeled_pool_pipeline)

train_dataloader = dict(
    _delete_=True,
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='MultiSourceSampler', batch_size=4, source_ratio=[1, 1]),
    # ignore_keys: PseudoLabeledDataset (a CocoDataset) has COCO's palette;
    # without it mmdet's ConcatDataset.metainfo is a list of dicts.
    dataset=dict(
        type='ConcatDataset',
        ignore_keys=['palette'],
        datasets=[labeled_dataset, pseudo_labeled_dataset]))
# The labeled-only toy stages (1a, 3) train on D_l alone, with ground truth
# (no MultiBranch):
#   train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)
supervised_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type={{_base_.dataset_type}},
        data_root=data_root,
        ann_file=labeled_ann_file,
        data_prefix=dict(img='leftImg8bit/train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline={{_base_.train_pipeline}}))
