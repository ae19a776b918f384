# Labels-only baseline of CAST on COCO: the same DINOv2-S + DPT +
# Mask2Former student (no L_pxl, no teacher) trained on the labeled split D_l
# alone, for as many iterations as stages 2 + 3
# (90000 + 10000);
# the Cityscapes student schedule (the paper gives none
# for COCO): AdamW 5e-5, wd 0.1, poly, batch 8, LSJ 1024, backbone lr x0.1,
# clip 0.01, AMP.
#   mim train mmdet configs/mmcast/supervised_student_coco.py --launcher pytorch --gpus 4
_base_ = [
    './_base_/models/student_dinov2-s_dpt-52m.py',
    './_base_/datasets/semi_coco_instance.py',
    './_base_/schedules/cast_90k.py',
    './_base_/cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = 80  # COCO thing classes

model = dict(
    panoptic_head=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes))

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(
    _delete_=True,
    batch_size={{_base_.batch_size_per_gpu}},
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset={{_base_.supervised_dataset}})

max_iters = 100000
train_cfg = dict(max_iters=max_iters, val_interval=5000)
param_scheduler = dict(end=max_iters)
