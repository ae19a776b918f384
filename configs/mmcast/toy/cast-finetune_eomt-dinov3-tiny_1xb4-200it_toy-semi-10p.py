# CAST stage 3 on the toy data with the toy EoMT student: start from the
# stage-2 student of cast-distill_eomt-dinov3-tiny_1xb4-1600it_toy-semi-10p.py
# and train on the labeled split D_l only, with L_sup only, to remove
# residual pseudo-label bias (the recipe of
# ../cast/cast-finetune_mask2former-r18_1xb4-200it_toy-semi-10p.py). The
# masked attention anneals again, over iterations [50 (j + 1), 50 (j + 2))
# of block j (the toy EoMT's schedule scaled to 200 iterations).
#   mim train mmdet configs/mmcast/toy/cast-finetune_eomt-dinov3-tiny_1xb4-200it_toy-semi-10p.py
_base_ = [
    '../_base_/models/eomt_dinov3-tiny_toy.py',
    '../_base_/datasets/semi_toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

# The student weights of a CASTDistiller checkpoint live under "student.".
distilled_student = 'work-dir://work_dirs/cast-distill_eomt-dinov3-tiny_1xb4-1600it_toy-semi-10p'  # noqa: E501
model = dict(
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
custom_hooks = [
    dict(
        type='MaskAnnealingHook',
        start_iters=[50, 100],
        end_iters=[100, 150],
        power=0.9)
]
