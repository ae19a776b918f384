# A tiny Mask2Former for the toy data, sized for a 2-core CPU: ResNet-18 at a
# quarter of its width (base_channels 16: stages of 16/32/64/128 channels,
# 0.7 M weights; random init), a 64-d pixel decoder and queries, 3 decoder
# layers; 1.0 M weights in all. The head is mask2former_instance_head.py's
# narrowed to 64 channels: every nested width is overridden here (the base's
# widths are evaluated in the base), with 4 heads, FFN 256, GN of 16 groups,
# one pixel-decoder encoder layer, 20 queries, 256 sampled points and at most
# 50 instances per image. A full-width R-18 (11.6 M weights) took 2.4 times
# as long a step on 96x192 images: its step was bound by operators and
# weights, not pixels (docs/en/notes/toy_protocol.md, the entry on the
# two-core toy).
_base_ = './mask2former_instance_head.py'

feat_channels = 64

model = dict(
    backbone=dict(
        type='ResNet',
        depth=18,
        base_channels=16,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    panoptic_head=dict(
        in_channels=[16, 32, 64, 128],
        feat_channels=feat_channels,
        out_channels=feat_channels,
        num_queries=20,
        pixel_decoder=dict(
            norm_cfg=dict(num_groups=16),
            encoder=dict(
                num_layers=1,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=feat_channels, num_heads=4),
                    ffn_cfg=dict(
                        embed_dims=feat_channels, feedforward_channels=256))),
            positional_encoding=dict(num_feats=feat_channels // 2)),
        positional_encoding=dict(num_feats=feat_channels // 2),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=feat_channels, num_heads=4),
                cross_attn_cfg=dict(embed_dims=feat_channels, num_heads=4),
                ffn_cfg=dict(
                    embed_dims=feat_channels, feedforward_channels=256)))),
    train_cfg=dict(num_points=256),
    test_cfg=dict(max_per_image=50))
