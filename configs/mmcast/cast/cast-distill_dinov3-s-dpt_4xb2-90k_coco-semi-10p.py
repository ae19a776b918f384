# CAST stage 2 on COCO with the DINOv3 ViT-S/16 student
# (_base_/models/student_dinov3-s_dpt.py):
# cast-distill_dinov2-s-dpt_4xb2-90k_coco-semi-10p.py with the student's
# backbone swapped (strides 4/8/16/32, batch padded to a multiple of 32); the
# same teacher, pseudo-label file (the same theta_T'' labels the same D_u),
# data and schedule.
#   mim train mmdet configs/mmcast/cast/cast-distill_dinov3-s-dpt_4xb2-90k_coco-semi-10p.py --launcher pytorch --gpus 4
# Needs the converted DINOv3 weights (_base_/models/dinov3_backbones.py).
_base_ = [
    './cast-distill_dinov2-s-dpt_4xb2-90k_coco-semi-10p.py',
    '../_base_/models/dinov3_backbones.py',
]

data_preprocessor = dict(pad_size_divisor=_base_.dinov3_pad_size_divisor)

model = dict(
    data_preprocessor=dict(data_preprocessor=data_preprocessor),
    student=dict(
        data_preprocessor=data_preprocessor,
        backbone=dict(_base_.dinov3_s_backbone, _delete_=True),
        panoptic_head=dict(
            strides=_base_.dinov3_strides,
            pixel_decoder=dict(strides=_base_.dinov3_strides))))

optim_wrapper = dict(paramwise_cfg=dict(custom_keys=_base_.dinov3_custom_keys))
