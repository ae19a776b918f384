# CAST teacher-student wrapper (stage 2) with the real-size EoMT student
# (eomt_dinov3-s.py) and CAST's contrastive branch on its patch tokens: the
# final block's 384-d tokens after vit.norm, at stride 16 (a 32x64 map of a
# 512x1024 crop; the DPT student compares its stride-32 768-d level),
# projected per patch by the DPT student's MLP (384 -> 128 -> 128 -> 128,
# no bias, ReLU between layers) and compared with the pixel-aligned strong
# view's. Strong view and L_pxl are those of cast_student_dinov2-s_dpt.py
# (lambda_pxl = 0.1, R = 200 negatives drawn by the fused sampler from the
# other images of the whole batch, gathered from every GPU; T = 0.3,
# annealed to 0.07 by the stage config's ContrastTemperatureHook; hinge
# 0.5). Stage configs set the frozen teacher (a config path and a
# checkpoint). Checkpoints hold only ``student.*``.
_base_ = './eomt_dinov3-s.py'

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
            in_channels=384,  # the ViT's width
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
            loss_weight=0.1)),
    teacher=None,
    teacher_checkpoint=None,
    semi_train_cfg=dict(
        sup_weight=1.0, unsup_weight=1.0, pseudo_label_mode='offline'),
    data_preprocessor=dict(
        type='MultiBranchDataPreprocessor',
        data_preprocessor=_base_.model.data_preprocessor))
