# CAST stage 1a on Cityscapes
# (10 % labels, seed 1: tools/split_semi.py ... --out-dir
# data/cityscapes/annotations/semi):
# fine-tune the pre-trained teacher theta_T^0 on the labeled split D_l
# -> theta_T' (_base_/cast_stages/adapt_teacher.py).
#   mim train mmdet configs/mmcast/cast/cast-adapt-teacher_mask2former-swin-l_4xb2-10k_cityscapes-semi-10p.py
#   mim train mmdet configs/mmcast/cast/cast-adapt-teacher_mask2former-swin-l_4xb2-10k_cityscapes-semi-10p.py --launcher pytorch --gpus 4
# Batch 2 per GPU: 4 GPUs give the total of 8 (_base_/schedules/cast_90k.py).
# Iterations: not given by the paper (our choice).
_base_ = [
    '../_base_/cast_stages/adapt_teacher.py',
    '../_base_/datasets/semi_cityscapes_instance.py',
]

num_classes = 8  # Cityscapes thing classes

model = dict(
    panoptic_head=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes))

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 10000
train_cfg = dict(max_iters=max_iters)
param_scheduler = dict(end=max_iters)
