# CAST stage 1a on ADE20K
# (10 % labels, seed 1: tools/split_semi.py ... --out-dir
# data/ADEChallengeData2016/semi_anns):
# fine-tune the pre-trained teacher theta_T^0 (Mask2Former Swin-L,
# MMDetection's COCO-panoptic zoo weights) on the labeled split D_l with
# L_sup + lambda_pxl * L_pxl -> theta_T'.
#   mim train mmdet configs/mmcast/adapt_teacher_ade20k.py
#   mim train mmdet configs/mmcast/adapt_teacher_ade20k.py --launcher pytorch --gpus 4
# Batch 2 per GPU: 4 GPUs give the total of 8 (_base_/schedules/cast_90k.py).
# The zoo checkpoint's 133-class classifier does not fit the 100-class head:
# MMEngine skips it (size-mismatch warning) and it starts from random init;
# see _base_/models/cast_teacher_mask2former_swin-l.py. This config's model
# is also the teacher architecture of stages 1b and 2 (model.teacher).
# Iterations: not given by the paper (our choice).
_base_ = [
    './_base_/models/cast_teacher_mask2former_swin-l.py',
    './_base_/datasets/semi_ade20k_instance.py',
    './_base_/schedules/cast_ade20k_160k.py',
    './_base_/cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = 100  # ADE20K thing classes

model = dict(
    panoptic_head=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes))

# theta_T^0 (tools/cast_pipeline.py overrides load_from)
load_from = 'checkpoints/mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic_20220407_104949-82f8d28d.pth'  # noqa

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(
    _delete_=True,
    batch_size={{_base_.batch_size_per_gpu}},
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset={{_base_.supervised_dataset}})

max_iters = 20000
train_cfg = dict(max_iters=max_iters, val_interval=5000)
param_scheduler = dict(end=max_iters)
# Teacher adaptation optimiser (spec "Models", stage 1): AdamW 5e-5, weight
# decay 0.01, backbone lr x0.1; poly decay, clip 0.01 and AMP as the student.
optim_wrapper = dict(optimizer=dict(lr=5e-5, weight_decay=0.01))
custom_hooks = [dict(type='ContrastTemperatureHook', start=0.3, end=0.07)]
