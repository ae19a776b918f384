# CAST stage 1b on your COCO-format dataset (custom_dataset.py), at the
# paper's sizes: theta_T' (stage 1a) pseudo-labels D_u offline; the teacher,
# re-initialised from the ORIGINAL weights theta_T^0 (not theta_T'), trains
# on D_l + pseudo(D_u) -> theta_T''
# (../_base_/cast_stages/adapt_teacher_selftrain.py).
#   mim train mmdet configs/mmcast/custom/adapt_teacher_selftrain_custom.py \
#       --launcher pytorch --gpus 4
# Needs work_dirs/adapt_teacher_custom/ (stage 1a's default
# work dir). Semi-supervised stages need >= 2 images per GPU (one per branch).
_base_ = [
    '../_base_/cast_stages/adapt_teacher_selftrain.py',
    './_base_/semi_custom_instance.py',
]

num_classes = _base_.num_dataset_classes  # len(classes), custom_dataset.py
pseudo_label_file = \
    'work_dirs/adapt_teacher_selftrain_custom/pseudo_labels.json'

model = dict(
    student=_base_.head_classes,
    # theta_T' (stage 1a) labels D_u (tools/cast_pipeline.py overrides
    # model.teacher_checkpoint)
    teacher='configs/mmcast/custom/adapt_teacher_custom.py',
    teacher_checkpoint='work-dir://work_dirs/adapt_teacher_custom')

# D_l (branch "sup") and the offline pseudo-labels of D_u (branch "unsup"),
# 1:1 per batch. tools/cast_pipeline.py sets the PseudoLabeledDataset's
# ann_file (found by type, in any position).
train_dataloader = dict(
    dataset=dict(datasets=[
        _base_.labeled_dataset,
        dict(_base_.pseudo_labeled_dataset, ann_file=pseudo_label_file)
    ]))

max_iters = 40000
train_cfg = dict(max_iters=max_iters)
param_scheduler = dict(end=max_iters)
# PseudoLabelHook (first) labels this stage's D_u into pseudo_label_file
custom_hooks = [
    dict(
        _base_.custom_hooks[0],
        out_file=pseudo_label_file,
        unlabeled_dataset=_base_.unlabeled_dataset),
    *_base_.custom_hooks[1:],
]
