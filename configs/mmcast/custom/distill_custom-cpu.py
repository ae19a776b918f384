# CAST stage 2 on your COCO-format dataset (custom_dataset.py), CPU-sized:
# the adapted R-34 teacher theta_T'' is frozen and pseudo-labels D_u once
# (offline); the R-18 student trains on
# J(theta_S; D_l, D_u; lambda_semi = 1, lambda_pxl = 0.1), T annealed
# 0.3 -> 0.07. 1 labeled : 3 pseudo-labeled images per batch of 4, as in the
# toy pipeline (with 10 % labels, 1:1 shows each labeled image ~9x as often
# as each pseudo-labeled one).
#   mim train mmdet configs/mmcast/custom/distill_custom-cpu.py
# Needs work_dirs/adapt_teacher_selftrain_custom-cpu/ (stage 1b's
# default work dir).
_base_ = [
    '../_base_/models/cast_distiller_r18_toy.py',
    './_base_/semi_custom_instance_cpu.py',
    '../_base_/cast_stages/pseudo_label_hooks.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = _base_.num_dataset_classes  # len(classes), custom_dataset.py
pseudo_label_file = 'work_dirs/distill_custom-cpu/pseudo_labels.json'

model = dict(
    student=_base_.head_classes,
    # theta_T'': the teacher architecture of stage 1a, weights of stage 1b
    # (tools/cast_pipeline.py overrides model.teacher_checkpoint)
    teacher='configs/mmcast/custom/adapt_teacher_custom-cpu.py',
    teacher_checkpoint=(
        'work-dir://work_dirs/adapt_teacher_selftrain_custom-cpu'),
    semi_train_cfg=dict(unsup_weight=1.0))

# source_ratio follows the datasets' order: 1 image of D_l, 3 pseudo-labeled
train_dataloader = dict(
    sampler=dict(source_ratio=[1, 3]),
    dataset=dict(datasets=[
        _base_.labeled_dataset,
        dict(_base_.pseudo_labeled_dataset, ann_file=pseudo_label_file)
    ]))

max_iters = 1600
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
# PseudoLabelHook (first) labels this stage's D_u into pseudo_label_file
custom_hooks = [
    dict(
        _base_.custom_hooks[0],
        out_file=pseudo_label_file,
        unlabeled_dataset=_base_.unlabeled_dataset,
        batch_size=4),
    *_base_.custom_hooks[1:],
]
