# CAST stage 2 on Cityscapes with the EoMT ViT-S/16 student
# (_base_/models/cast_distiller_eomt-dinov3-s.py: the DINOv3 ViT-S/16 of the
# DPT student segmenting by itself, 200 queries in its last 4 blocks, L_pxl
# on its final patch tokens): the teacher, pseudo-label file (the same
# theta_T'' labels the same D_u), data, schedule and hooks of
# cast-distill_dinov2-s-dpt_4xb2-90k_cityscapes-semi-10p.py, as its DINOv3-S
# DPT twin (cast-distill_dinov3-s-dpt_4xb2-90k_cityscapes-semi-10p.py). The
# ViT trains at x0.1 of the lr as that student's backbone. The masked
# attention of block j of the last 4 anneals over iterations
# [15000 (j + 1), 15000 (j + 2)) (EoMT's schedule: the training split in
# L + 2 parts), so the last 15000 iterations train without it, as it
# predicts.
#   mim train mmdet configs/mmcast/cast/cast-distill_eomt-dinov3-s_4xb2-90k_cityscapes-semi-10p.py --launcher pytorch --gpus 4
# Needs stage 1b's default work dir:
#   work_dirs/cast-adapt-teacher-selftrain_mask2former-swin-l_4xb2-30k_cityscapes-semi-10p/
# and the converted DINOv3 weights (_base_/models/dinov3_backbones.py).
_base_ = [
    '../_base_/models/cast_distiller_eomt-dinov3-s.py',
    '../_base_/cast_stages/pseudo_label_hooks.py',
    '../_base_/datasets/semi_cityscapes_instance.py',
    '../_base_/schedules/cast_90k.py',
    '../_base_/cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = 8  # Cityscapes thing classes

# the DPT students' stage 2 writes (or reuses) the same file
pseudo_label_file = 'work_dirs/cast-distill_dinov2-s-dpt_4xb2-90k_cityscapes-semi-10p/pseudo_labels.json'  # noqa: E501
# theta_T'' (stage 1b's default work dir)
adapted_teacher = 'work-dir://work_dirs/cast-adapt-teacher-selftrain_mask2former-swin-l_4xb2-30k_cityscapes-semi-10p'  # noqa: E501

model = dict(
    student=dict(
        criterion=dict(
            num_things_classes=num_classes,
            loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
        panoptic_fusion_head=dict(num_things_classes=num_classes)),
    # theta_T'': the teacher architecture of stage 1a, the weights of stage 1b
    # (tools/cast_pipeline.py overrides model.teacher_checkpoint)
    teacher='configs/mmcast/cast/cast-adapt-teacher_mask2former-swin-l_4xb2-10k_cityscapes-semi-10p.py',  # noqa: E501
    teacher_checkpoint=adapted_teacher)

# D_l (branch "sup") and the offline pseudo-labels of D_u (branch "unsup"),
# 1:1 per batch; the PseudoLabeledDataset's data_root is '' so that its
# ann_file is exactly PseudoLabelHook's out_file.
train_dataloader = dict(
    dataset=dict(datasets=[
        _base_.labeled_dataset,
        dict(_base_.pseudo_labeled_dataset, ann_file=pseudo_label_file)
    ]))

optim_wrapper = dict(paramwise_cfg=dict(custom_keys=_base_.eomt_custom_keys))

# PseudoLabelHook (first) labels D_u into pseudo_label_file; then L_pxl's
# temperature and the masked attention's annealing
custom_hooks = [
    dict(
        _base_.custom_hooks[0],
        out_file=pseudo_label_file,
        unlabeled_dataset=_base_.unlabeled_dataset),
    *_base_.custom_hooks[1:],
    dict(
        type='MaskAnnealingHook',
        start_iters=[15000, 30000, 45000, 60000],
        end_iters=[30000, 45000, 60000, 75000],
        power=0.9),
]
