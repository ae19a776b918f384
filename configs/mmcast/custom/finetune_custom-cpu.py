# CAST stage 3 on your COCO-format dataset (custom_dataset.py), CPU-sized:
# start from the stage-2 R-18 student and train on the labeled split D_l
# only, with L_sup only (lambda_semi = lambda_pxl = 0), to remove residual
# pseudo-label bias.
#   mim train mmdet configs/mmcast/custom/finetune_custom-cpu.py
# Needs work_dirs/distill_custom-cpu/ (stage 2's default work
# dir).
_base_ = [
    '../_base_/models/cast_mask2former_r18_toy.py',
    './_base_/semi_custom_instance_cpu.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = _base_.num_dataset_classes  # len(classes), custom_dataset.py
# The student weights of a CASTDistiller checkpoint live under "student."
# (tools/cast_pipeline.py overrides model.init_cfg.checkpoint).
distilled_student = 'work-dir://work_dirs/distill_custom-cpu'
model = dict(
    panoptic_head=dict(
        _base_.head_classes.panoptic_head, loss_pixel_contrast=None),
    panoptic_fusion_head=_base_.head_classes.panoptic_fusion_head,
    init_cfg=dict(
        type='Pretrained', checkpoint=distilled_student, prefix='student.'))

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 400
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
