# Guided Distillation on Cityscapes with CAST's compact student (DINOv2-S +
# DPT + Mask2Former, 52M), for the comparison of CAST's Table 1 (GD 30.8 /
# CAST 33.9 mask AP at 10 % labels).
# Phase 1, the supervised teacher:
#   configs/mmcast/cast/supervised_dinov2-s-dpt_4xb2-100k_cityscapes-10p.py
# on the same labeled split (teacher and student share the architecture);
# its finished checkpoint is found in its default work dir (work-dir://).
# Phases 2-4 here: guided burn-in (50k iterations, the frozen teacher labels
# every unlabeled batch), switch, EMA teacher (decay 0.9996) to 90k, as the
# paper (tools/cast_pipeline.py --methods gd runs the same 90k / 50k).
# Labeled split: the dataset base's D_l, Guided Distillation's published
# 10 % list (mmcast/datasets/splits/cityscapes/perc_10.txt), the same for
# every stage and method (see ../_base_/datasets/semi_cityscapes_instance.py
# for the command that writes it, and for other splits).
# Unlabeled pool: all 2975 train images. 1:1 per batch (2 per GPU, 4xb2).
# Labeled side: GD's class-balanced repeat sampling, threshold 10 (see
# ../_base_/datasets/guided_semi_cityscapes_instance.py).
# Schedule (GD): AdamW, wd 0.05, backbone x0.1, clip 0.01, poly, AMP.
# Batch and lr: GD trains at 16 labeled + 16 unlabeled images with lr 1e-4.
# mmcast's one rule for the lr of another global batch is the square-root
# rule of Adam-type optimisers (mmcast/engine/batch_scaling.py): at this
# config's 4xb2 = 4 + 4 images, 1e-4 x sqrt(8 / 32) = 5e-5, written below
# with auto_scale_lr.base_batch_size 8 (which is CAST's lr for the same
# student at the same batch). On another number of GPUs pass --auto-scale-lr
# (square-root rule, mmcast's BatchScaledRunner): at GD's 16xb2 it gives
# 1e-4; tools/cast_pipeline.py applies the rule itself.
#   mim train mmdet configs/mmcast/guided_distillation/guided-distillation_dinov2-s_cityscapes.py \
#       --launcher pytorch --gpus 4
_base_ = [
    '../_base_/models/guided_distiller_dinov2-s.py',
    '../_base_/datasets/guided_semi_cityscapes_instance.py',
    '../_base_/schedules/cast_90k.py',
    '../_base_/cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = 8  # Cityscapes thing classes
# phase 1's default work dir, its finished checkpoint (tools/cast_pipeline.py
# --methods gd sets the file)
supervised_teacher = \
    'work-dir://work_dirs/supervised_dinov2-s-dpt_4xb2-100k_cityscapes-10p'

head = dict(
    panoptic_head=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes))
model = dict(student=head, teacher=head, teacher_checkpoint=supervised_teacher)

# GD's lr 1e-4 at 16 + 16 images, square-root scaled to 4 + 4 (see above);
# auto_scale_lr.base_batch_size 8 (../_base_/schedules/cast_90k.py)
optim_wrapper = dict(optimizer=dict(lr=5e-5, weight_decay=0.05))
burn_in_iters = 50000
custom_hooks = [
    dict(type='GuidedTeacherHook', burn_in_iters=burn_in_iters, decay=0.9996)
]
