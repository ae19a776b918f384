# The toy "foundation model" teacher: the CAST Mask2Former with a deeper and
# wider backbone (ResNet-34 at 3/8 of its width: stages of 24/48/96/192
# channels), more queries and decoder layers: 3.4 M weights, 3.3 x the
# student's. L_pxl stays on the stride-16 level (96 channels here).
_base_ = './cast_mask2former_r18_toy.py'

model = dict(
    backbone=dict(depth=34, base_channels=24),
    panoptic_head=dict(
        in_channels=[24, 48, 96, 192],
        num_queries=30,
        transformer_decoder=dict(num_layers=4),
        projection_head=dict(in_channels=96)))
