# The CAST student with a DINOv3 ViT-S+/16 backbone (timm's
# vit_small_plus_patch16_dinov3: 28.7M parameters, SwiGLU FFN, 4 register
# tokens, RoPE): student_dinov3-s_dpt.py with the larger ViT.
# Parameters (tests/test_dinov3_student.py) and MACs, attention included
# (tools/analysis/model_cost.py), at 1024x2048 / 512x1024:
#   backbone 36.02 M (ViT 28.68 M)   882 G / 105 G
#   total    57.66 M                1423 G / 241 G
_base_ = './student_dinov3-s_dpt.py'

model = dict(backbone=dict(_base_.dinov3_splus_backbone, _delete_=True))
