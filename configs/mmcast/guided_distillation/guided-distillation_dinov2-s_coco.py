# Guided Distillation on COCO with CAST's compact student (DINOv2-S + DPT +
# Mask2Former, 52M), 10 % labels (1/2/5 %: set percent below, or
# --cfg-options train_dataloader.dataset.datasets.0.dataset.ann_file=
# semi_anns/instances_train2017.1@1.json; splits from tools/split_semi.py as
# in _base_/datasets/semi_coco_instance.py).
# Phase 1, the supervised teacher:
#   configs/mmcast/cast/supervised_dinov2-s-dpt_4xb2-100k_coco-10p.py
# on the same labeled split (teacher and student share the architecture).
# Phases 2-4 here: guided burn-in, switch, EMA teacher (decay 0.9996); GD's
# COCO schedule is 368,750 iterations at batch 16 + 16; this config keeps
# the project's 90k-iteration student schedule with burn-in at the same
# share as GD's Cityscapes recipe (50k of 90k).
# Unlabeled pool: all train2017 images. 1:1 per batch (2 per GPU, 4xb2).
# Labeled side: GD's class-balanced repeat sampling, threshold 10.
# Schedule (GD): AdamW, wd 0.05, backbone x0.1, clip 0.01, poly, AMP; GD's
# lr 1e-4 at 16 + 16 images square-root scaled to this 4 + 4: 5e-5.
# Both as guided-distillation_dinov2-s_cityscapes.py explains.
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
percent = 10  # 1, 2, 5 or 10
# phase 1's default work dir (tools/cast_pipeline.py --methods gd sets it)
supervised_teacher = ('work_dirs/supervised_dinov2-s-dpt_4xb2-100k_coco-10p/'
                      'iter_100000.pth')

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
                ann_file=f'semi_anns/instances_train2017.1@{percent}.json',
                data_prefix=dict(img={{_base_.train_img_prefix}}),
                filter_cfg=dict(filter_empty_gt=True, min_size=0),
                pipeline={{_base_.sup_pipeline}},
                backend_args={{_base_.backend_args}})),
        {{_base_.unlabeled_pool_dataset}},
    ]))

# GD's lr 1e-4 at 16 + 16 images, square-root scaled to 4 + 4
optim_wrapper = dict(optimizer=dict(lr=5e-5, weight_decay=0.05))
burn_in_iters = 50000
custom_hooks = [
    dict(type='GuidedTeacherHook', burn_in_iters=burn_in_iters, decay=0.9996)
]
