# Guided Distillation on Cityscapes with the EoMT ViT-S/16 student
# (_base_/models/guided_distiller_eomt-dinov3-s.py), beside CAST with the
# same student (../cast/cast-distill_eomt-dinov3-s_4xb2-90k_cityscapes-semi-10p.py
# and its stage 3): everything of guided-distillation_dinov2-s_cityscapes.py
# (the same labeled split with GD's class-balanced repeat sampling,
# threshold 10; all 2975 train images as the unlabeled pool, 1:1 per batch;
# burn-in 50k iterations, switch, EMA teacher 0.9996 to 90k; AdamW 5e-5 at
# 4xb2, wd 0.05, ViT lr x0.1, clip 0.01, poly, AMP) but the student; the
# data is ../_base_/datasets/guided_semi_cityscapes_instance.py.
# Phase 1, the supervised teacher:
#   configs/mmcast/cast/supervised_eomt-dinov3-s_4xb2-100k_cityscapes-10p.py
# on the same labeled split (teacher and student share the architecture);
# its finished checkpoint is found in its default work dir (work-dir://).
# The student's masked attention anneals over the 90k iterations as in
# CAST's stage 2 with it: block j over [15000 (j + 1), 15000 (j + 2)).
#   mim train mmdet configs/mmcast/guided_distillation/guided-distillation_eomt-dinov3-s_cityscapes.py \
#       --launcher pytorch --gpus 4
# or both phases, per seed, beside CAST:
#   python tools/cast_pipeline.py cityscapes --student eomt-dinov3-s --methods cast gd ...
_base_ = [
    '../_base_/models/guided_distiller_eomt-dinov3-s.py',
    '../_base_/datasets/guided_semi_cityscapes_instance.py',
    '../_base_/schedules/cast_90k.py',
    '../_base_/cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = 8  # Cityscapes thing classes
# phase 1's default work dir, its finished checkpoint (tools/cast_pipeline.py
# --methods gd sets the file)
supervised_teacher = \
    'work-dir://work_dirs/supervised_eomt-dinov3-s_4xb2-100k_cityscapes-10p'

head = dict(
    criterion=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes))
model = dict(student=head, teacher=head, teacher_checkpoint=supervised_teacher)

# GD's lr 1e-4 at 16 + 16 images, square-root scaled to 4 + 4;
# auto_scale_lr.base_batch_size 8 (../_base_/schedules/cast_90k.py)
optim_wrapper = dict(
    optimizer=dict(lr=5e-5, weight_decay=0.05),
    paramwise_cfg=dict(custom_keys=_base_.eomt_custom_keys))
burn_in_iters = 50000
custom_hooks = [
    dict(type='GuidedTeacherHook', burn_in_iters=burn_in_iters, decay=0.9996),
    dict(
        type='MaskAnnealingHook',
        start_iters=[15000, 30000, 45000, 60000],
        end_iters=[30000, 45000, 60000, 75000],
        power=0.9),
]
