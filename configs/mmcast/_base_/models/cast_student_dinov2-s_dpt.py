# The paper's CAST student (spec "Models"): the 52M DINOv2-S + DPT +
# Mask2Former student of student_dinov2-s_dpt-52m.py (the spec-width 79M one:
# student_dinov2-s_dpt-79m.py) as a CASTMask2Former, i.e. with the
# instance-aware pixel-wise contrastive loss L_pxl on a photometric strong
# view (authors' code, spec "Instance-aware pixel-wise contrastive loss"):
# projection head on the deepest backbone level (contrast_level=-1: the
# stride-28 map with 768 channels), MLP 768 -> 128 -> 128 -> 128 without
# bias, ReLU between layers; lambda_pxl = 0.1, R = 200 negatives from the
# other images of the batch drawn by the fused (mask x class) sampler,
# T = 0.3 (annealed to 0.07 by ContrastTemperatureHook in the stage configs),
# hinge 0.5 on the negatives. Stage 3 switches L_pxl off with
# panoptic_head.loss_pixel_contrast=None.
# A finer embedding map: contrast_level=0/1/2 (strides 3.5/7/14) with
# projection_head.in_channels=96/192/384; with many more candidates per
# image there, draw='rejection' keeps the sampler's cost independent of
# their number (tools/benchmark/pixel_contrast.py measures both), and
# negatives_from='global' draws from every GPU's images.
_base_ = './student_dinov2-s_dpt-52m.py'

model = dict(
    type='CASTMask2Former',
    strong_view=dict(type='PhotometricStrongView'),
    panoptic_head=dict(
        type='CASTMask2FormerHead',
        contrast_level=-1,
        projection_head=dict(
            type='PixelProjectionHead',
            in_channels=768,  # backbone.out_channels[-1]
            hidden_channels=128,
            out_channels=128,
            num_layers=3,
            bias=False),
        loss_pixel_contrast=dict(
            type='InstanceAwarePixelContrastLoss',
            sampler='fused',
            num_negatives=200,
            cross_image=True,
            temperature=0.3,
            neg_margin=0.5,
            loss_weight=0.1)))
