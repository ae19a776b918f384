# Toy-size DINOv3 student, the counterpart of student_dinov2-tiny_dpt_toy.py
# (8 classes, ~96x192 images, 2 CPU cores): a 4-layer 64-d timm DINOv3 ViT
# (4 heads, FFN 256, 4 register tokens, RoPE; patch 8 as the DINOv2 toy,
# random init, LayerScale 0.1 since it trains from scratch) read out at every
# block, reassembled to 16/32/64/128 channels at strides 2/4/8/16, the toy's
# 64-d DPT pixel decoder and 2-layer 64-d Mask2Former decoder (20 queries).
_base_ = './student_dinov2-tiny_dpt_toy.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='DINOv3MultiLevel',
        arch='vit_small_patch16_dinov3',
        vit_cfg=dict(
            embed_dim=64, depth=4, num_heads=4, patch_size=8,
            init_values=0.1),
        out_indices=(0, 1, 2, 3),
        out_channels=(16, 32, 64, 128),
        resize_factors=(4, 2, 1, 0.5),
        readout_type='project',
        norm_intermediate=True,
        init_cfg=None))
