# CAST stage 3 on the toy data: start from the stage-2 student and train on
# the labeled split D_l only, with L_sup only (λ_semi = λ_pxl = 0), to remove
# residual pseudo-label bias.
#   mim train mmdet configs/mmcast/cast/cast-finetune_mask2former-r18_1xb4-200it_toy-semi-10p.py
_base_ = [
    '../_base_/models/cast_mask2former_r18_toy.py',
    '../_base_/datasets/semi_toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

# The student weights of a CASTDistiller checkpoint live under "student.".
distilled_student = 'work-dir://work_dirs/cast-distill_mask2former-r18_1xb4-1600it_toy-semi-10p'  # noqa: E501
model = dict(
    panoptic_head=dict(loss_pixel_contrast=None),
    init_cfg=dict(
        type='Pretrained', checkpoint=distilled_student, prefix='student.'))

train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
