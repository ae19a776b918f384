# The toy student with CAST's contrastive branch: the tiny Mask2Former plus a
# per-pixel projection head on the deepest ResNet-18 feature (stride 32, 512
# channels) and the instance-aware pixel-wise contrastive loss (λ_pxl = 0.1).
# At stride 32 a 96x192 image is a 3x6 map, so a batch of 4 gives each
# anchor 54 candidates for R = 200 and every one is drawn; contrast_level=1
# (stride 8, 12x24, 128 channels) gives 864: configs/mmcast/ablations.json,
# contrast:stride8.
_base_ = './mask2former_r18_toy.py'

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
            in_channels=512,
            hidden_channels=128,
            out_channels=128,
            num_layers=3),
        loss_pixel_contrast=dict(
            type='InstanceAwarePixelContrastLoss',
            sampler='fused',
            num_negatives=200,
            cross_image=True,
            temperature=0.3,
            neg_margin=0.5,
            loss_weight=0.1)))
