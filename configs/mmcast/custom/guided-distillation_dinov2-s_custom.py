# Guided Distillation on your COCO-format dataset (custom_dataset.py) with
# CAST's compact student (DINOv2-S + DPT + Mask2Former, 52M), beside CAST.
# Phase 1, the supervised teacher: supervised_student_custom.py on the same
# labeled split (teacher and student share the architecture). Phases 2-4
# here: guided burn-in, switch, EMA teacher (decay 0.9996), burn-in at the
# share of GD's Cityscapes recipe (50k of 90k). Unlabeled pool: all train
# images. 1:1 per batch (2 per GPU, 4xb2). Labeled side: GD's
# class-balanced repeat sampling, threshold 10. Schedule (GD): AdamW,
# wd 0.05, backbone x0.1, clip 0.01, poly, AMP; GD's lr 1e-4 at 16 + 16
# images square-root scaled to this 4 + 4: 5e-5. Both as
# ../guided_distillation/guided-distillation_dinov2-s_cityscapes.py explains.
#   mim train mmdet configs/mmcast/custom/guided-distillation_dinov2-s_custom.py \
#       --launcher pytorch --gpus 4
# or beside CAST, per seed: python tools/cast_pipeline.py custom --methods cast gd
_base_ = [
    '../_base_/models/guided_distiller_dinov2-s.py',
    './_base_/semi_custom_instance.py',
    '../_base_/schedules/cast_90k.py',
    '../_base_/cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = _base_.num_dataset_classes  # len(classes), custom_dataset.py
# phase 1's default work dir (tools/cast_pipeline.py --methods gd sets it)
supervised_teacher = 'work-dir://work_dirs/supervised_student_custom'

model = dict(
    student=_base_.head_classes,
    teacher=_base_.head_classes,
    teacher_checkpoint=supervised_teacher)

# GD's labeled side: repeat factor sampling with threshold t = 10
labeled_repeat_thr = 10.0
train_dataloader = dict(
    dataset=dict(datasets=[
        dict(
            type='ClassBalancedDataset',
            oversample_thr=labeled_repeat_thr,
            dataset=_base_.labeled_dataset),
        _base_.unlabeled_pool_dataset,
    ]))

# GD's lr 1e-4 at 16 + 16 images, square-root scaled to 4 + 4
optim_wrapper = dict(optimizer=dict(lr=5e-5, weight_decay=0.05))
burn_in_iters = 50000
custom_hooks = [
    dict(type='GuidedTeacherHook', burn_in_iters=burn_in_iters, decay=0.9996)
]
