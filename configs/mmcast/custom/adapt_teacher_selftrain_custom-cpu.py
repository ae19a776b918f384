# CAST stage 1b on your COCO-format dataset (custom_dataset.py), CPU-sized:
# theta_T' (stage 1a) pseudo-labels D_u; the R-34 teacher is re-initialised
# from the ORIGINAL weights theta_T^0 and trained on D_l + pseudo(D_u) with
# lambda_semi = 1 and L_pxl -> theta_T''.
#   mim train mmdet configs/mmcast/custom/adapt_teacher_selftrain_custom-cpu.py
# Needs work_dirs/adapt_teacher_custom-cpu/ (stage 1a's default
# work dir).
_base_ = [
    '../_base_/models/cast_distiller_r34_toy.py',
    './_base_/semi_custom_instance_cpu.py',
    '../_base_/cast_stages/pseudo_label_hooks.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = _base_.num_dataset_classes  # len(classes), custom_dataset.py
pretrained_teacher = 'work-dir://work_dirs/custom-cpu_teacher0'
pseudo_label_file = \
    'work_dirs/adapt_teacher_selftrain_custom-cpu/pseudo_labels.json'

model = dict(
    # theta_T'': re-initialised from theta_T^0, not from theta_T'
    # (tools/cast_pipeline.py overrides model.student.init_cfg.checkpoint)
    student=dict(
        _base_.head_classes,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_teacher)),
    # theta_T' (stage 1a) labels D_u (tools/cast_pipeline.py overrides
    # model.teacher_checkpoint)
    teacher='configs/mmcast/custom/adapt_teacher_custom-cpu.py',
    teacher_checkpoint='work-dir://work_dirs/adapt_teacher_custom-cpu')

# D_l (branch "sup") and the offline pseudo-labels of D_u (branch "unsup");
# tools/cast_pipeline.py sets the PseudoLabeledDataset's ann_file (found by
# type, in any position).
train_dataloader = dict(
    dataset=dict(datasets=[
        _base_.labeled_dataset,
        dict(_base_.pseudo_labeled_dataset, ann_file=pseudo_label_file)
    ]))

max_iters = 500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
# PseudoLabelHook (first) labels this stage's D_u into pseudo_label_file
custom_hooks = [
    dict(
        _base_.custom_hooks[0],
        out_file=pseudo_label_file,
        unlabeled_dataset=_base_.unlabeled_dataset,
        batch_size=4),
    *_base_.custom_hooks[1:],
]
