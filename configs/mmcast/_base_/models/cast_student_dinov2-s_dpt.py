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
# negatives_from='global': "the other images of the batch" are those of the
# whole batch of 8 (the spec's), gathered from every GPU, not the one other
# image of a GPU's 2 (4xb2; 8xb1 would leave none and fall back to the
# anchor's own image). Measured on toy scenes (8 images, stride-28 grid of
# 512x1024, sampler fed perfect predictions, 27 % thing pixels): with
# ~650 candidates for R = 200 a background anchor still draws 33 % of its
# negatives from background (uniform: 70 %); from the ~4500 pixels of 7
# images, 12 % (uniform: 73 %). The loss then costs ~1.3x on CPU (exact
# draw over 7x the candidates), little next to a training step on a GPU.
# In a single process (e.g. a CPU run) 'global' is the same as 'local'.
# A finer embedding map: contrast_level=0/1/2 (strides 3.5/7/14) with
# projection_head.in_channels=96/192/384; with many more candidates per
# image there, draw='rejection' keeps the sampler's cost independent of
# their number (tools/benchmark/pixel_contrast.py measures both).
_base_ = './student_dinov2-s_dpt-52m.py'

model = dict(
    type='CASTMask2Former',
    # Photometric strong view, pixel-aligned (spec: ColorJitter 0.4/0.4/0.4/
    # 0.1, RandomGrayscale p = 0.2, GaussianBlur kernel 5, sigma 0.1-2). The
    # CAST spec gives no probability for the jitter and the blur: p = 0.8 and
    # p = 0.5 are Guided Distillation's recipe (its views), not CAST's.
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
            negatives_from='global',
            temperature=0.3,
            neg_margin=0.5,
            loss_weight=0.1)))
