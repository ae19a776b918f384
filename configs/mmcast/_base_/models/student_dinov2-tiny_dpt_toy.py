# Toy-size version of the paper's student (student_dinov2-s_dpt-52m.py) for the
# toy pipeline (8 classes, ~96x192 images, 2 CPU cores): a 4-layer 64-d ViT
# (patch 8, random init) read out at every block, reassembled to 16/32/64/128
# channels at strides 2/4/8/16, a 64-d DPT pixel decoder and a 2-layer 64-d
# Mask2Former decoder with 20 queries. 1.26 M parameters. LayerScale starts
# at 0.1 (not DINOv2's 1e-5) since the toy ViT trains from scratch.
# Patch 8 (not 14) keeps ~12x24 tokens on the small toy images; the stride
# bookkeeping is the same as the paper's (patch / (4, 2, 1, 0.5)).
_base_ = './student_dinov2-s_dpt-52m.py'

embed_dims = 64
patch_size = 8

data_preprocessor = dict(pad_size_divisor=16)  # patch 8 / resize 0.5

model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=64,
            num_layers=4,
            num_heads=4,
            feedforward_channels=256),
        img_size=(96, 192),
        patch_size=patch_size,
        out_indices=(0, 1, 2, 3),
        out_channels=(16, 32, 64, 128),
        resize_factors=(4, 2, 1, 0.5),
        layer_scale_init_value=0.1,
        init_cfg=None),
    panoptic_head=dict(
        in_channels=[16, 32, 64, 128],
        strides=[2, 4, 8, 16],
        feat_channels=embed_dims,
        out_channels=embed_dims,
        num_queries=20,
        pixel_decoder=dict(strides=[2, 4, 8, 16]),
        positional_encoding=dict(num_feats=embed_dims // 2),
        transformer_decoder=dict(
            num_layers=2,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
                cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
                ffn_cfg=dict(
                    embed_dims=embed_dims, feedforward_channels=256)))),
    train_cfg=dict(num_points=1024),
    test_cfg=dict(max_per_image=50))
