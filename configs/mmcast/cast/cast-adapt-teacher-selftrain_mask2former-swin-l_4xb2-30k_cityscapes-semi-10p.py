# CAST stage 1b on Cityscapes: theta_T' (stage 1a) pseudo-labels D_u offline;
# the teacher, re-initialised from theta_T^0, trains on D_l + pseudo(D_u)
# -> theta_T'' (_base_/cast_stages/adapt_teacher_selftrain.py).
#   mim train mmdet configs/mmcast/cast/cast-adapt-teacher-selftrain_mask2former-swin-l_4xb2-30k_cityscapes-semi-10p.py --launcher pytorch --gpus 4
# Needs stage 1a's default work dir:
#   work_dirs/cast-adapt-teacher_mask2former-swin-l_4xb2-10k_cityscapes-semi-10p/
# Semi-supervised stages need >= 2 images per
# GPU (one per branch); default 4 GPUs x 2 = 8. Iterations: not given by the
# paper (our choice).
_base_ = [
    '../_base_/cast_stages/adapt_teacher_selftrain.py',
    '../_base_/datasets/semi_cityscapes_instance.py',
]

num_classes = 8  # Cityscapes thing classes
pseudo_label_file = \
    'work_dirs/cast-adapt-teacher-selftrain_mask2former-swin-l_4xb2-30k_cityscapes-semi-10p/pseudo_labels.json'  # noqa: E501

model = dict(
    student=dict(
        panoptic_head=dict(
            num_things_classes=num_classes,
            loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
        panoptic_fusion_head=dict(num_things_classes=num_classes)),
    # theta_T' (stage 1a) labels D_u (tools/cast_pipeline.py overrides
    # model.teacher_checkpoint)
    teacher='configs/mmcast/cast/cast-adapt-teacher_mask2former-swin-l_4xb2-10k_cityscapes-semi-10p.py',  # noqa: E501
    teacher_checkpoint='work-dir://work_dirs/cast-adapt-teacher_mask2former-swin-l_4xb2-10k_cityscapes-semi-10p')  # noqa: E501

# D_l (branch "sup") and the offline pseudo-labels of D_u (branch "unsup"),
# 1:1 per batch. tools/cast_pipeline.py sets the PseudoLabeledDataset's
# ann_file (found by type, in any position).
# Its data_root is '', so that its ann_file is exactly PseudoLabelHook's
# out_file.
train_dataloader = dict(
    dataset=dict(datasets=[
        _base_.labeled_dataset,
        dict(_base_.pseudo_labeled_dataset, ann_file=pseudo_label_file)
    ]))

max_iters = 30000
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
