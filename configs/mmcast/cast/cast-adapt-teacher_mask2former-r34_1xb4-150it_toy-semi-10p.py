# CAST stage 1a on the toy data: fine-tune the pre-trained teacher θ_T^0 on
# the labeled split D_l with L_sup + λ_pxl · L_pxl → θ_T'.
#   mim train mmdet configs/mmcast/cast/cast-adapt-teacher_mask2former-r34_1xb4-150it_toy-semi-10p.py
_base_ = [
    '../_base_/models/cast_mask2former_r34_toy_teacher.py',
    '../_base_/datasets/semi_toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

# θ_T^0: the toy foundation-model stand-in.
pretrained_teacher = 'work-dir://work_dirs/mask2former_r34_source-pretrain_toy'  # noqa: E501
load_from = pretrained_teacher

train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 150
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
custom_hooks = [dict(type='ContrastTemperatureHook', start=0.3, end=0.07)]
