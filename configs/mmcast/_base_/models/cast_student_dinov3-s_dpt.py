# The CAST student of cast_student_dinov2-s_dpt.py (CASTMask2Former with the
# instance-aware pixel-wise contrastive loss on the deepest level, 768
# channels) with the DINOv3 ViT-S/16 backbone of student_dinov3-s_dpt.py:
# strides 4/8/16/32, batch padded to a multiple of 32; the contrast level is
# the stride-32 map.
_base_ = ['./cast_student_dinov2-s_dpt.py', './dinov3_backbones.py']

data_preprocessor = dict(pad_size_divisor=_base_.dinov3_pad_size_divisor)

model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(_base_.dinov3_s_backbone, _delete_=True),
    panoptic_head=dict(
        strides=_base_.dinov3_strides,
        pixel_decoder=dict(strides=_base_.dinov3_strides)))
