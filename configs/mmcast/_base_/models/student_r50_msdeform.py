# Ablation student (spec "Models": DINOv2-S 30.7 vs ResNet-50 25.5 mask AP):
# stock Mask2Former R-50 (ImageNet torchvision weights) with the
# multi-scale deformable-attention pixel decoder, 256-d, 100 queries,
# 9 decoder layers -- mmdet's mask2former_r50_8xb2-lsj-50e_coco model with 8
# thing classes and instance-only inference. 44.0 M parameters.
# The head is mask2former_instance_head.py's as it stands.
_base_ = './mask2former_instance_head.py'

model = dict(
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    panoptic_head=dict(in_channels=[256, 512, 1024, 2048]),
    init_cfg=None)
