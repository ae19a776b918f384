# CAST stage 2 on your COCO-format dataset (custom_dataset.py), at the paper's
# sizes: the frozen adapted teacher theta_T'' pseudo-labels D_u offline and
# the DINOv2-S + DPT student trains on D_l + pseudo(D_u)
# (../_base_/cast_stages/distill.py); the student schedule of the COCO config
# (AdamW 5e-5, wd 0.1, poly, batch 8, LSJ 1024, backbone lr x0.1, clip 0.01,
# AMP).
#   mim train mmdet configs/mmcast/custom/distill_custom.py \
#       --launcher pytorch --gpus 4
# Needs work_dirs/adapt_teacher_selftrain_custom/ (stage 1b's
# default work dir).
_base_ = [
    '../_base_/cast_stages/distill.py',
    './_base_/semi_custom_instance.py',
    '../_base_/schedules/cast_90k.py',
]

num_classes = _base_.num_dataset_classes  # len(classes), custom_dataset.py
pseudo_label_file = 'work_dirs/distill_custom/pseudo_labels.json'

model = dict(
    student=_base_.head_classes,
    # theta_T'': the teacher architecture of stage 1a, the weights of stage 1b
    # (tools/cast_pipeline.py overrides model.teacher_checkpoint)
    teacher='configs/mmcast/custom/adapt_teacher_custom.py',
    teacher_checkpoint=(
        'work-dir://work_dirs/adapt_teacher_selftrain_custom'))

# D_l (branch "sup") and the offline pseudo-labels of D_u (branch "unsup"),
# 1:1 per batch (tools/cast_pipeline.py finds the PseudoLabeledDataset by
# type).
train_dataloader = dict(
    dataset=dict(datasets=[
        _base_.labeled_dataset,
        dict(_base_.pseudo_labeled_dataset, ann_file=pseudo_label_file)
    ]))

max_iters = 90000
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
