# CAST stage 3 on Cityscapes with the EoMT ViT-S/16 student
# (_base_/models/eomt_dinov3-s.py): the stage-2 student of
# cast-distill_eomt-dinov3-s_4xb2-90k_cityscapes-semi-10p.py trains on the
# labeled split D_l only, with L_sup only (no L_pxl, no projection head), to
# remove residual pseudo-label bias: the data, schedule and length of
# cast-finetune_dinov2-s-dpt_4xb2-10k_cityscapes-semi-10p.py, as its DINOv3-S
# DPT twin. The masked attention anneals again, block j over iterations
# [1667 (j + 1), 1667 (j + 2)) (rounded; EoMT's schedule at 10000
# iterations).
#   mim train mmdet configs/mmcast/cast/cast-finetune_eomt-dinov3-s_4xb2-10k_cityscapes-semi-10p.py --launcher pytorch --gpus 4
# Needs stage 2's default work dir:
#   work_dirs/cast-distill_eomt-dinov3-s_4xb2-90k_cityscapes-semi-10p/
_base_ = [
    '../_base_/models/eomt_dinov3-s.py',
    '../_base_/datasets/semi_cityscapes_instance.py',
    '../_base_/schedules/cast_90k.py',
    '../_base_/cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = 8  # Cityscapes thing classes

# all weights come from stage 2, whose checkpoint holds them under
# "student." (tools/cast_pipeline.py overrides model.init_cfg.checkpoint)
distilled_student = 'work-dir://work_dirs/cast-distill_eomt-dinov3-s_4xb2-90k_cityscapes-semi-10p'  # noqa: E501
model = dict(
    criterion=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes),
    init_cfg=dict(
        _delete_=True,
        type='Pretrained',
        checkpoint=distilled_student,
        prefix='student.'))

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 10000
train_cfg = dict(max_iters=max_iters)
param_scheduler = dict(end=max_iters)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=_base_.eomt_custom_keys))
custom_hooks = [
    dict(
        type='MaskAnnealingHook',
        start_iters=[1667, 3333, 5000, 6667],
        end_iters=[3333, 5000, 6667, 8333],
        power=0.9)
]
