# CAST teacher–student wrapper with the toy EoMT student and CAST's
# contrastive branch on its patch tokens: the final block's 64-d tokens at
# stride 8 (a 12x24 map of a 96x192 image) projected per patch and compared
# with the pixel-aligned strong view's (the toy R-18 student's strong view,
# projection widths and L_pxl, λ_pxl = 0.1). Stage configs set the frozen
# teacher (a config path and a checkpoint).
_base_ = './eomt_dinov3-tiny_toy.py'

model = dict(
    _delete_=True,
    type='CASTDistiller',
    student=dict(
        _base_.model,
        strong_view=dict(
            type='PhotometricStrongView',
            jitter_prob=0.8,
            gray_prob=0.2,
            blur_prob=0.5),
        projection_head=dict(
            type='PixelProjectionHead',
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
            loss_weight=0.1)),
    teacher=None,
    teacher_checkpoint=None,
    semi_train_cfg=dict(
        sup_weight=1.0, unsup_weight=1.0, pseudo_label_mode='offline'),
    data_preprocessor=dict(
        type='MultiBranchDataPreprocessor',
        data_preprocessor={{_base_.model.data_preprocessor}}))
