# cast_student_dinov3-s_dpt.py with the DINOv3 ViT-S+/16 backbone (timm's
# vit_small_plus_patch16_dinov3, SwiGLU FFN).
_base_ = './cast_student_dinov3-s_dpt.py'

model = dict(backbone=dict(_base_.dinov3_splus_backbone, _delete_=True))
