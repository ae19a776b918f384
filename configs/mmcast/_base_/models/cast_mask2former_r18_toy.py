# The toy student with CAST's contrastive branch: the tiny Mask2Former plus a
# per-pixel projection head on the stride-16 ResNet-18 feature (64 channels
# at the toy's quarter width) and the instance-aware pixel-wise contrastive
# loss (λ_pxl = 0.1). At stride 16 a 96x192 toy image is a 6x12 map, so a
# batch of 4 gives each anchor 3 x 72 = 216 candidates from the other
# images; R is scaled to the toy, 50 negatives per anchor instead of the
# paper's 200, so that the candidates are 4.3 x R and the samplers choose
# among them (tests/apis/pipeline/test_ablations.py counts them from the
# configs; at the former stride 32 every one of 54 candidates was drawn).
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
        contrast_level=2,
        projection_head=dict(
            type='PixelProjectionHead',
            in_channels=64,
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
