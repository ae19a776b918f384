# CAST stage 2 on COCO: the adapted teacher theta_T'' is frozen and
# pseudo-labels D_u once (offline, before training); the DINOv2-S + DPT
# student trains on J(theta_S; D_l, D_u; lambda_semi = 1, lambda_pxl = 0.1),
# T annealed 0.3 -> 0.07;
# the Cityscapes student schedule (the paper gives none
# for COCO): AdamW 5e-5, wd 0.1, poly, batch 8, LSJ 1024, backbone lr x0.1,
# clip 0.01, AMP.
#   mim train mmdet configs/mmcast/distill_coco.py
#   mim train mmdet configs/mmcast/distill_coco.py --launcher pytorch --gpus 4
# Needs work_dirs/adapt_teacher_selftrain_coco/iter_40000.pth (stage 1b's
# default work dir). Semi-supervised stages need >= 2 images per GPU (one per
# branch); 4 GPUs x 2 give the total of 8 (_base_/schedules/cast_90k.py).
_base_ = [
    './_base_/models/cast_distiller_dinov2-s.py',
    './_base_/datasets/semi_coco_instance.py',
    './_base_/schedules/cast_90k.py',
    './_base_/cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = 80  # COCO thing classes

pseudo_label_file = 'work_dirs/distill_coco/pseudo_labels.json'
# theta_T'' (stage 1b's default work dir)
adapted_teacher = 'work_dirs/adapt_teacher_selftrain_coco/iter_40000.pth'

model = dict(
    student=dict(
        panoptic_head=dict(
            num_things_classes=num_classes,
            loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
        panoptic_fusion_head=dict(num_things_classes=num_classes)),
    # theta_T'': the teacher architecture of stage 1a, the weights of stage 1b
    # (a CASTDistiller checkpoint: its student.* weights are read;
    # tools/cast_pipeline.py overrides model.teacher_checkpoint)
    teacher='configs/mmcast/adapt_teacher_coco.py',
    teacher_checkpoint=adapted_teacher,
    semi_train_cfg=dict(unsup_weight=1.0))

# D_l (branch "sup") and the offline pseudo-labels of D_u (branch "unsup"),
# 1:1 per batch. The pseudo-labeled dataset must stay second: tools/
# cast_pipeline.py overrides train_dataloader.dataset.datasets.1.ann_file.
# data_root='' so that its ann_file is exactly PseudoLabelHook's out_file.
train_dataloader = dict(
    dataset=dict(datasets=[
        {{_base_.labeled_dataset}},
        dict(
            type='PseudoLabeledDataset',
            data_root='',
            ann_file=pseudo_label_file,
            unlabeled_ann_file={{_base_.pseudo_labeled_dataset.unlabeled_ann_file}},  # noqa
            metainfo=dict(classes={{_base_.classes}}),
            data_prefix={{_base_.pseudo_labeled_dataset.data_prefix}},
            pipeline={{_base_.unsup_pipeline}}),
    ]))

max_iters = 90000
train_cfg = dict(max_iters=max_iters, val_interval=5000)
param_scheduler = dict(end=max_iters)
# PseudoLabelHook must stay first (tools/cast_pipeline.py overrides
# custom_hooks.0.out_file). It labels D_u with the frozen teacher before
# training if pseudo_label_file is missing or stale (score > 0.3,
# <= 100 per image, masks at 0.5, painted without overlap).
custom_hooks = [
    dict(
        type='PseudoLabelHook',
        out_file=pseudo_label_file,
        unlabeled_dataset={{_base_.unlabeled_dataset}},
        filter_cfg=dict(score_thr=0.3, max_per_image=100, mask_thr=0.5),
        batch_size=2),
    dict(type='ContrastTemperatureHook', start=0.3, end=0.07),
]
