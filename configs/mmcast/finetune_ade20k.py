# CAST stage 3 on ADE20K: start from the stage-2 student and train on the
# labeled split D_l only, with L_sup only (lambda_semi = lambda_pxl = 0), to
# remove residual pseudo-label bias.
#   mim train mmdet configs/mmcast/finetune_ade20k.py --launcher pytorch --gpus 4
# Needs work_dirs/distill_ade20k/iter_160000.pth (stage 2's default
# work dir).
# Iterations: not given by the paper (our choice).
_base_ = [
    './_base_/models/cast_student_dinov2-s_dpt.py',
    './_base_/datasets/semi_ade20k_instance.py',
    './_base_/schedules/cast_ade20k_160k.py',
    './_base_/cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = 100  # ADE20K thing classes

# The student weights of a CASTDistiller checkpoint live under "student."
# (tools/cast_pipeline.py overrides model.init_cfg.checkpoint).
distilled_student = 'work_dirs/distill_ade20k/iter_160000.pth'
model = dict(
    # all weights come from stage 2: no DINOv2 download
    backbone=dict(init_cfg=None),
    panoptic_head=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1]),
        loss_pixel_contrast=None),
    panoptic_fusion_head=dict(num_things_classes=num_classes),
    # (_delete_: the base's init_cfg is None)
    init_cfg=dict(
        _delete_=True,
        type='Pretrained',
        checkpoint=distilled_student,
        prefix='student.'))

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(
    _delete_=True,
    batch_size={{_base_.batch_size_per_gpu}},
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset={{_base_.supervised_dataset}})

max_iters = 20000
train_cfg = dict(max_iters=max_iters, val_interval=5000)
param_scheduler = dict(end=max_iters)
