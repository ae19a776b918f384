# CAST stage 3 on COCO: the stage-2 student trains on the labeled
# split D_l only, with L_sup only (_base_/cast_stages/finetune.py).
#   mim train mmdet configs/mmcast/cast/cast-finetune_dinov2-s-dpt_4xb2-10k_coco-semi-10p.py --launcher pytorch --gpus 4
# Needs stage 2's default work dir:
#   work_dirs/cast-distill_dinov2-s-dpt_4xb2-90k_coco-semi-10p/
# Iterations: not given by the paper (our choice).
_base_ = [
    '../_base_/cast_stages/finetune.py',
    '../_base_/datasets/semi_coco_instance.py',
    '../_base_/schedules/cast_90k.py',
]

num_classes = 80  # COCO thing classes

# (tools/cast_pipeline.py overrides model.init_cfg.checkpoint)
distilled_student = 'work-dir://work_dirs/cast-distill_dinov2-s-dpt_4xb2-90k_coco-semi-10p'  # noqa: E501
model = dict(
    panoptic_head=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes),
    init_cfg=dict(checkpoint=distilled_student))

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 10000
train_cfg = dict(max_iters=max_iters)
param_scheduler = dict(end=max_iters)
