# CAST stage 3 on Cityscapes with the DINOv3 ViT-S+/16 student:
# cast-finetune_dinov2-s-dpt_4xb2-10k_cityscapes-semi-10p.py with the student's
# backbone swapped (_base_/models/student_dinov3-splus_dpt.py), starting from
# stage 2 of cast-distill_dinov3-splus-dpt_4xb2-90k_cityscapes-semi-10p.py.
#   mim train mmdet configs/mmcast/cast/cast-finetune_dinov3-splus-dpt_4xb2-10k_cityscapes-semi-10p.py --launcher pytorch --gpus 4
# Needs stage 2's default work dir:
#   work_dirs/cast-distill_dinov3-splus-dpt_4xb2-90k_cityscapes-semi-10p/
_base_ = [
    './cast-finetune_dinov2-s-dpt_4xb2-10k_cityscapes-semi-10p.py',
    '../_base_/models/dinov3_backbones.py',
]

# (tools/cast_pipeline.py overrides model.init_cfg.checkpoint)
distilled_student = 'work-dir://work_dirs/cast-distill_dinov3-splus-dpt_4xb2-90k_cityscapes-semi-10p'  # noqa: E501
data_preprocessor = dict(pad_size_divisor=_base_.dinov3_pad_size_divisor)

model = dict(
    data_preprocessor=data_preprocessor,
    # all weights come from stage 2
    backbone=dict(_base_.dinov3_splus_backbone, _delete_=True, init_cfg=None),
    panoptic_head=dict(
        strides=_base_.dinov3_strides,
        pixel_decoder=dict(strides=_base_.dinov3_strides)),
    init_cfg=dict(checkpoint=distilled_student))

optim_wrapper = dict(paramwise_cfg=dict(custom_keys=_base_.dinov3_custom_keys))
