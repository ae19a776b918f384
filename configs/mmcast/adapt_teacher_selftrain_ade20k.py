# CAST stage 1b on ADE20K: theta_T' (stage 1a) pseudo-labels D_u offline;
# the teacher is re-initialised from the ORIGINAL weights theta_T^0 (not
# theta_T') and trained on D_l + pseudo(D_u) with lambda_semi = 1 and L_pxl
# -> theta_T''.
#   mim train mmdet configs/mmcast/adapt_teacher_selftrain_ade20k.py --launcher pytorch --gpus 4
# Needs work_dirs/adapt_teacher_ade20k/iter_20000.pth (stage 1a's default
# work dir). Semi-supervised stages need >= 2 images per GPU (one per branch);
# default 4 GPUs x 2 = 8. Iterations: not given by the paper (our choice).
_base_ = [
    './_base_/models/cast_distiller_swin-l.py',
    './_base_/datasets/semi_ade20k_instance.py',
    './_base_/schedules/cast_ade20k_160k.py',
    './_base_/cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = 100  # ADE20K thing classes

# theta_T^0 (tools/cast_pipeline.py overrides
# model.student.init_cfg.checkpoint)
pretrained_teacher = 'checkpoints/mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic_20220407_104949-82f8d28d.pth'  # noqa
pseudo_label_file = \
    'work_dirs/adapt_teacher_selftrain_ade20k/pseudo_labels.json'

model = dict(
    # theta_T'': re-initialised from theta_T^0 (133-class classifier skipped,
    # see _base_/models/cast_teacher_mask2former_swin-l.py)
    student=dict(
        panoptic_head=dict(
            num_things_classes=num_classes,
            loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
        panoptic_fusion_head=dict(num_things_classes=num_classes),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_teacher)),
    # theta_T' (stage 1a) labels D_u (tools/cast_pipeline.py overrides
    # model.teacher_checkpoint)
    teacher='configs/mmcast/adapt_teacher_ade20k.py',
    teacher_checkpoint='work_dirs/adapt_teacher_ade20k/iter_20000.pth')

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

max_iters = 40000
train_cfg = dict(max_iters=max_iters, val_interval=5000)
param_scheduler = dict(end=max_iters)
# Teacher adaptation optimiser (spec "Models", stage 1): AdamW 5e-5, weight
# decay 0.01, backbone lr x0.1; poly decay, clip 0.01 and AMP as the student.
optim_wrapper = dict(optimizer=dict(lr=5e-5, weight_decay=0.01))
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
