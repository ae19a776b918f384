# Labels-only baseline of CAST on Cityscapes with the EoMT ViT-S/16 student
# (_base_/models/eomt_dinov3-s.py, from the converted DINOv3-S weights):
# the labeled split D_l alone, for as many iterations as stages 2 + 3
# (90000 + 10000), with the data and schedule of
# supervised_dinov2-s-dpt_4xb2-100k_cityscapes-10p.py (AdamW 5e-5, wd 0.1,
# poly, batch 8, crop 512x1024, ViT lr x0.1, clip 0.01, AMP), as its DINOv3-S
# DPT twin. Also Guided Distillation's supervised teacher
# (../guided_distillation/guided-distillation_eomt-dinov3-s_cityscapes.py).
# The masked attention of block j anneals over iterations
# [16667 (j + 1), 16667 (j + 2)) (rounded; EoMT's schedule at 100000).
#   mim train mmdet configs/mmcast/cast/supervised_eomt-dinov3-s_4xb2-100k_cityscapes-10p.py --launcher pytorch --gpus 4
# Needs the converted DINOv3 weights (_base_/models/dinov3_backbones.py).
_base_ = [
    '../_base_/models/eomt_dinov3-s.py',
    '../_base_/datasets/semi_cityscapes_instance.py',
    '../_base_/schedules/cast_90k.py',
    '../_base_/cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = 8  # Cityscapes thing classes

model = dict(
    criterion=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes))

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 100000
train_cfg = dict(max_iters=max_iters)
param_scheduler = dict(end=max_iters)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=_base_.eomt_custom_keys))
custom_hooks = [
    dict(
        type='MaskAnnealingHook',
        start_iters=[16667, 33333, 50000, 66667],
        end_iters=[33333, 50000, 66667, 83333],
        power=0.9)
]
