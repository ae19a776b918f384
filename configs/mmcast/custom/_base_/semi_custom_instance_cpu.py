# Semi-supervised instance segmentation on your COCO-format dataset
# (../custom_dataset.py: data root, classes, split), CPU-sized like the toy
# pipeline (../../_base_/datasets/semi_toy_cityscapes_instance.py): the
# datasets and loaders of semi_custom_instance.py with images resized to at
# most 256 px (x0.8-1.25 in training) and flipped instead of its large-scale
# jitter, batch 4 (the semi-supervised stages mix D_l and pseudo-labeled D_u
# 1:1), no dataloader workers.
_base_ = './semi_custom_instance.py'

image_size = (256, 256)  # (w, h): the longer side at most 256 px
test_scale = image_size
batch_size_per_gpu = 4

geometric_pipeline = [
    dict(type='LoadImageFromFile', backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='RandomResize',
        scale=image_size,
        ratio_range=(0.8, 1.25),
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='FilterAnnotations',
        min_gt_bbox_wh=(1e-5, 1e-5),
        by_mask=True,
        keep_empty=False),
]
# The base's pipelines on this geometric part: each ends as there (packing
# or MultiBranch); the teacher's and the test view resize to test_scale.
train_pipeline = geometric_pipeline + _base_.train_pipeline[-1:]
sup_pipeline = geometric_pipeline + _base_.sup_pipeline[-1:]
unsup_pipeline = geometric_pipeline + _base_.unsup_pipeline[-1:]
unlabeled_pool_pipeline = [
    t for t in geometric_pipeline
    if t['type'] not in ('LoadAnnotations', 'FilterAnnotations')
] + _base_.unlabeled_pool_pipeline[-1:]
label_pipeline = [
    dict(t, scale=test_scale) if t['type'] == 'Resize' else t
    for t in _base_.label_pipeline
]
test_pipeline = [
    dict(t, scale=test_scale) if t['type'] == 'Resize' else t
    for t in _base_.test_pipeline
]

supervised_dataset = dict(_base_.supervised_dataset, pipeline=train_pipeline)
labeled_dataset = dict(_base_.labeled_dataset, pipeline=sup_pipeline)
pseudo_labeled_dataset = dict(
    _base_.pseudo_labeled_dataset, pipeline=unsup_pipeline)
unlabeled_dataset = dict(_base_.unlabeled_dataset, pipeline=label_pipeline)
unlabeled_pool_dataset = dict(
    _base_.unlabeled_pool_dataset, pipeline=unlabeled_pool_pipeline)

train_dataloader = dict(
    batch_size=batch_size_per_gpu,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(batch_size=batch_size_per_gpu),
    dataset=dict(datasets=[labeled_dataset, pseudo_labeled_dataset]))
supervised_dataloader = dict(
    batch_size=batch_size_per_gpu,
    num_workers=0,
    persistent_workers=False,
    dataset=supervised_dataset)
val_dataloader = dict(
    batch_size=batch_size_per_gpu,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
