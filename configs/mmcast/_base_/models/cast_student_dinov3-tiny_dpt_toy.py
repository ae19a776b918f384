# The toy DINOv3 DPT student (student_dinov3-tiny_dpt_toy.py) with CAST's
# contrastive branch, as the paper's DPT student has it
# (cast_student_dinov2-s_dpt.py): the projection head on the deepest backbone
# level (contrast_level=-1: stride 16, 128 channels, a 6x12 map of a 96x192
# image, 216 candidates per anchor in a batch of 4 for the toy's R = 50),
# the toy R-18 student's strong view, projection widths and L_pxl
# (λ_pxl = 0.1).
# The twin of the toy EoMT student's CAST branch
# (cast_distiller_eomt-dinov3-tiny_toy.py: the final tokens at stride 8).
_base_ = './student_dinov3-tiny_dpt_toy.py'

model = dict(
    type='CASTMask2Former',
    strong_view=dict(
        type='PhotometricStrongView',
        jitter_prob=0.8,
        gray_prob=0.2,
        blur_prob=0.5),
    panoptic_head=dict(
        type='CASTMask2FormerHead',
        contrast_level=-1,
        projection_head=dict(
            type='PixelProjectionHead',
            in_channels=128,  # backbone.out_channels[-1]
            hidden_channels=128,
            out_channels=128,
            num_layers=3),
        loss_pixel_contrast=dict(
            type='InstanceAwarePixelContrastLoss',
            sampler='fused',
            num_negatives=50,
            cross_image=True,
            temperature=0.3,
            neg_margin=0.5,
            loss_weight=0.1)))
