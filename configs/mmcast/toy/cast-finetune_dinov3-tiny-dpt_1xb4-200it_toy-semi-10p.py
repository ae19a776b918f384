# CAST stage 3 on the toy data with the toy DINOv3 DPT student: start from
# the stage-2 student of
# cast-distill_dinov3-tiny-dpt_1xb4-1600it_toy-semi-10p.py and train on the
# labeled split D_l only, with L_sup only (λ_semi = λ_pxl = 0), to remove
# residual pseudo-label bias (the recipe of
# ../cast/cast-finetune_mask2former-r18_1xb4-200it_toy-semi-10p.py).
#   mim train mmdet configs/mmcast/toy/cast-finetune_dinov3-tiny-dpt_1xb4-200it_toy-semi-10p.py
_base_ = [
    '../_base_/models/cast_student_dinov3-tiny_dpt_toy.py',
    '../_base_/datasets/semi_toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

# The student weights of a CASTDistiller checkpoint live under "student.".
distilled_student = 'work-dir://work_dirs/cast-distill_dinov3-tiny-dpt_1xb4-1600it_toy-semi-10p'  # noqa: E501
model = dict(
    panoptic_head=dict(loss_pixel_contrast=None),
    init_cfg=dict(
        _delete_=True,
        type='Pretrained',
        checkpoint=distilled_student,
        prefix='student.'))

train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
