# Labels-only baseline of CAST on COCO: the student trained on the
# labeled split D_l alone (_base_/cast_stages/supervised_student.py), for as
# many iterations as stages 2 + 3 (90000 + 10000);
# the Cityscapes student schedule (the paper gives none
# for COCO): AdamW 5e-5, wd 0.1, poly, batch 8, LSJ 1024, backbone lr x0.1,
# clip 0.01, AMP.
#   mim train mmdet configs/mmcast/cast/supervised_dinov2-s-dpt_4xb2-100k_coco-10p.py --launcher pytorch --gpus 4
_base_ = [
    '../_base_/cast_stages/supervised_student.py',
    '../_base_/datasets/semi_coco_instance.py',
    '../_base_/schedules/cast_90k.py',
]

num_classes = 80  # COCO thing classes

model = dict(
    panoptic_head=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes))

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 100000
train_cfg = dict(max_iters=max_iters)
param_scheduler = dict(end=max_iters)
