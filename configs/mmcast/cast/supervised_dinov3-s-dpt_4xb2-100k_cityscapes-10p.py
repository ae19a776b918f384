# Labels-only baseline of CAST on Cityscapes with the DINOv3 ViT-S/16 student:
# supervised_dinov2-s-dpt_4xb2-100k_cityscapes-10p.py with the student's
# backbone swapped (_base_/models/student_dinov3-s_dpt.py).
#   mim train mmdet configs/mmcast/cast/supervised_dinov3-s-dpt_4xb2-100k_cityscapes-10p.py --launcher pytorch --gpus 4
# Needs the converted DINOv3 weights (_base_/models/dinov3_backbones.py).
_base_ = [
    './supervised_dinov2-s-dpt_4xb2-100k_cityscapes-10p.py', '../_base_/models/dinov3_backbones.py'  # noqa: E501
]

data_preprocessor = dict(pad_size_divisor=_base_.dinov3_pad_size_divisor)

model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(_base_.dinov3_s_backbone, _delete_=True),
    panoptic_head=dict(
        strides=_base_.dinov3_strides,
        pixel_decoder=dict(strides=_base_.dinov3_strides)))

optim_wrapper = dict(paramwise_cfg=dict(custom_keys=_base_.dinov3_custom_keys))
