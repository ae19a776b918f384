# The CAST student with a DINOv3 ViT-S/16 backbone (timm's
# vit_small_patch16_dinov3: 21.6M parameters, 4 register tokens, RoPE)
# instead of DINOv2 ViT-S/14: otherwise student_dinov2-s_dpt-52m.py (blocks
# 2, 5, 8, 11 reassembled to 96/192/384/768 channels, 256-d DPT pixel
# decoder, 256-d Mask2Former decoder with FFN 1024, 100 queries, 9 layers).
# Patch 16: the levels are at strides 4/8/16/32 and the batch is padded to a
# multiple of 32 (dinov3_backbones.py, which also says how to convert the
# weights).
# Parameters (tests/test_dinov3_student.py) and MACs, attention included
# (tools/analysis/model_cost.py), at 1024x2048 (8192 patch tokens; the
# DINOv2-S student pads to 1036x2072: 10,952) and at 512x1024:
#   backbone 28.93 M (ViT 21.59 M)   824 G /  90 G  (ViT attention 619 G)
#   total    50.57 M                1365 G / 226 G  (DINOv2-S: 2101 / 329 G)
_base_ = ['./student_dinov2-s_dpt-52m.py', './dinov3_backbones.py']

data_preprocessor = dict(pad_size_divisor=_base_.dinov3_pad_size_divisor)

model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(_base_.dinov3_s_backbone, _delete_=True),
    panoptic_head=dict(
        strides=_base_.dinov3_strides,
        pixel_decoder=dict(strides=_base_.dinov3_strides)))
