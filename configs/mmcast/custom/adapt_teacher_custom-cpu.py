# CAST stage 1a on your COCO-format dataset (custom_dataset.py: data root,
# classes, split), CPU-sized: the R-34 CAST Mask2Former teacher of the toy
# pipeline, fine-tuned from theta_T^0 on the labeled split D_l with
# L_sup + lambda_pxl * L_pxl -> theta_T'. Its model is also the teacher
# architecture of stages 1b and 2 (model.teacher).
#   mim train mmdet configs/mmcast/custom/adapt_teacher_custom-cpu.py \
#       --cfg-options load_from=<theta_T^0>
# theta_T^0 is your R-34 checkpoint of this architecture. Without one, a
# stand-in trained from scratch on D_l (no foundation model: CAST's teacher
# adaptation then starts from weights that saw only D_l); tools/cast_pipeline.py
# custom-cpu without --pretrained-teacher trains it itself, by hand:
#   mim train mmdet configs/mmcast/custom/adapt_teacher_custom-cpu.py \
#       --work-dir work_dirs/custom-cpu_teacher0 --cfg-options load_from=None
_base_ = [
    '../_base_/models/cast_mask2former_r34_toy_teacher.py',
    './_base_/semi_custom_instance_cpu.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = _base_.num_dataset_classes  # len(classes), custom_dataset.py
model = _base_.head_classes

# theta_T^0 (tools/cast_pipeline.py --pretrained-teacher overrides load_from)
pretrained_teacher = 'work-dir://work_dirs/custom-cpu_teacher0'
load_from = pretrained_teacher

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 300
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
custom_hooks = [dict(type='ContrastTemperatureHook', start=0.3, end=0.07)]
