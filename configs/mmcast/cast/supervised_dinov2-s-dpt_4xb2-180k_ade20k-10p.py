# Labels-only baseline of CAST on ADE20K: the student trained on the
# labeled split D_l alone (_base_/cast_stages/supervised_student.py), for as
# many iterations as stages 2 + 3 (160000 + 20000);
# AdamW 1e-4, wd 0.1, poly, batch 8, crop 630x630,
# backbone lr x0.1, clip 0.01, AMP (spec "Student schedule", ADE20K).
#   mim train mmdet configs/mmcast/cast/supervised_dinov2-s-dpt_4xb2-180k_ade20k-10p.py --launcher pytorch --gpus 4
_base_ = [
    '../_base_/cast_stages/supervised_student.py',
    '../_base_/datasets/semi_ade20k_instance.py',
    '../_base_/schedules/cast_ade20k_160k.py',
]

num_classes = 100  # ADE20K thing classes

model = dict(
    panoptic_head=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes))

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 180000
train_cfg = dict(max_iters=max_iters)
param_scheduler = dict(end=max_iters)
