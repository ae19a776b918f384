# CAST stage 2 on ADE20K: the frozen adapted teacher theta_T''
# pseudo-labels D_u offline and the DINOv2-S + DPT student trains on
# D_l + pseudo(D_u) (_base_/cast_stages/distill.py), 160000 iterations (the
# schedule's); AdamW 1e-4, wd 0.1, poly, batch 8, crop 630x630,
# backbone lr x0.1, clip 0.01, AMP (spec "Student schedule", ADE20K).
#   mim train mmdet configs/mmcast/cast/cast-distill_dinov2-s-dpt_4xb2-160k_ade20k-semi-10p.py
#   mim train mmdet configs/mmcast/cast/cast-distill_dinov2-s-dpt_4xb2-160k_ade20k-semi-10p.py --launcher pytorch --gpus 4
# Needs stage 1b's default work dir:
#   work_dirs/cast-adapt-teacher-selftrain_mask2former-swin-l_4xb2-40k_ade20k-semi-10p/
# Semi-supervised stages need >= 2 images per
# GPU (one per branch); 4 GPUs x 2 give the total of 8
# (_base_/schedules/cast_90k.py).
_base_ = [
    '../_base_/cast_stages/distill.py',
    '../_base_/datasets/semi_ade20k_instance.py',
    '../_base_/schedules/cast_ade20k_160k.py',
]

num_classes = 100  # ADE20K thing classes

pseudo_label_file = 'work_dirs/cast-distill_dinov2-s-dpt_4xb2-160k_ade20k-semi-10p/pseudo_labels.json'  # noqa: E501
# theta_T'' (stage 1b's default work dir)
adapted_teacher = 'work-dir://work_dirs/cast-adapt-teacher-selftrain_mask2former-swin-l_4xb2-40k_ade20k-semi-10p'  # noqa: E501

model = dict(
    student=dict(
        panoptic_head=dict(
            num_things_classes=num_classes,
            loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
        panoptic_fusion_head=dict(num_things_classes=num_classes)),
    # theta_T'': the teacher architecture of stage 1a, the weights of stage 1b
    # (a CASTDistiller checkpoint: its student.* weights are read;
    # tools/cast_pipeline.py overrides model.teacher_checkpoint)
    teacher='configs/mmcast/cast/cast-adapt-teacher_mask2former-swin-l_4xb2-20k_ade20k-semi-10p.py',  # noqa: E501
    teacher_checkpoint=adapted_teacher)

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

# PseudoLabelHook (first) labels this stage's D_u into pseudo_label_file
custom_hooks = [
    dict(
        _base_.custom_hooks[0],
        out_file=pseudo_label_file,
        unlabeled_dataset=_base_.unlabeled_dataset),
    *_base_.custom_hooks[1:],
]
