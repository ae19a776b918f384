# The toy "foundation model" teacher: the CAST Mask2Former with a deeper
# ResNet-34 backbone, more queries and decoder layers (about 2x the student).
_base_ = './cast_mask2former_r18_toy.py'

model = dict(
    backbone=dict(depth=34),
    panoptic_head=dict(
        num_queries=30,
        transformer_decoder=dict(num_layers=6)))
