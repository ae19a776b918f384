# Guided Distillation on COCO with CAST's compact student (DINOv2-S + DPT +
# Mask2Former, 52M), 10 % labels (1/2/5 %: tools/cast_pipeline.py
# --labeled-split 1@1, or by hand --cfg-options
# train_dataloader.dataset.datasets.0.dataset.ann_file=
# semi_anns/instances_train2017.1@1.json; splits from tools/split_semi.py as
# in _base_/datasets/semi_coco_instance.py).
# Phase 1, the supervised teacher:
#   configs/mmcast/cast/supervised_dinov2-s-dpt_4xb2-100k_coco-10p.py
# on the same labeled split (teacher and student share the architecture);
# its finished checkpoint is found in its default work dir (work-dir://).
# Phases 2-4 here: guided burn-in (50k iterations, GD's default), switch,
# EMA teacher (decay 0.9996).
# Schedule: GD's own COCO schedule, 368,750 iterations with the lr divided
# by 10 at 327,778 and 355,092 (MultiStepLR), AdamW, wd 0.05, backbone x0.1,
# clip 0.01, AMP, LSJ 1024 (the dataset base). GD runs it at 16 labeled + 16
# unlabeled images with lr 1e-4: that is this config on 16 GPUs x 2 with
# --auto-scale-lr. At the config's 4xb2 = 4 + 4 images mmcast's rule
# (mmcast/engine/batch_scaling.py) keeps the iterations and scales the lr by
# the square root of the batch: 1e-4 x sqrt(8 / 32) = 5e-5, written below
# (auto_scale_lr.base_batch_size 8); a quarter of GD's images per iteration,
# so a quarter of its epochs.
# Unlabeled pool: all train2017 images. 1:1 per batch (2 per GPU, 4xb2).
# Labeled side: GD's class-balanced repeat sampling, threshold 10.
#   mim train mmdet configs/mmcast/guided_distillation/guided-distillation_dinov2-s_coco.py \
#       --launcher pytorch --gpus 4
_base_ = [
    '../_base_/models/guided_distiller_dinov2-s.py',
    '../_base_/datasets/semi_coco_instance.py',
    '../_base_/schedules/cast_90k.py',
    '../_base_/cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = 80  # COCO thing classes
# phase 1's default work dir, its finished checkpoint (tools/cast_pipeline.py
# --methods gd sets the file)
supervised_teacher = \
    'work-dir://work_dirs/supervised_dinov2-s-dpt_4xb2-100k_coco-10p'

head = dict(
    panoptic_head=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes))
model = dict(student=head, teacher=head, teacher_checkpoint=supervised_teacher)

# GD's labeled side: repeat factor sampling with threshold t = 10
labeled_repeat_thr = 10.0
train_dataloader = dict(
    dataset=dict(datasets=[
        dict(
            type='ClassBalancedDataset',
            oversample_thr=labeled_repeat_thr,
            dataset=dict(
                type={{_base_.dataset_type}},
                data_root={{_base_.data_root}},
                ann_file={{_base_.labeled_ann_file}},
                data_prefix=dict(img={{_base_.train_img_prefix}}),
                filter_cfg=dict(filter_empty_gt=True, min_size=0),
                pipeline={{_base_.sup_pipeline}},
                backend_args={{_base_.backend_args}})),
        {{_base_.unlabeled_pool_dataset}},
    ]))

# GD's lr 1e-4 at 16 + 16 images, square-root scaled to 4 + 4;
# auto_scale_lr.base_batch_size 8 (../_base_/schedules/cast_90k.py)
optim_wrapper = dict(optimizer=dict(lr=5e-5, weight_decay=0.05))
# GD's COCO schedule
max_iters = 368750
train_cfg = dict(max_iters=max_iters)
param_scheduler = dict(
    _delete_=True,
    type='MultiStepLR',
    begin=0,
    end=max_iters,
    by_epoch=False,
    milestones=[327778, 355092],
    gamma=0.1)
burn_in_iters = 50000
custom_hooks = [
    dict(type='GuidedTeacherHook', burn_in_iters=burn_in_iters, decay=0.9996)
]
