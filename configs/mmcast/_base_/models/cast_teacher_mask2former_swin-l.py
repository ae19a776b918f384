# A Mask2Former Swin-L teacher for CAST, as a CASTMask2Former (stage 1 trains
# it with L_sup + lambda_pxl * L_pxl; it is the teacher of stages 1b and 2).
# Architecture of MMDetection's
#   mask2former/mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic.py
# (Swin-L 384/w12, 200 queries, 256-d MSDeformAttn pixel decoder, 9 decoder
# layers), instance-only inference, 8 Cityscapes thing classes by default
# (stage configs of other datasets set num_things_classes, loss_cls's
# class_weight and the fusion head's num_things_classes).
#
# NOTE: this replaces the paper's teacher (MM-Grounding-DINO Swin-L + SAM 2.1
# Hiera-L, configs/mmcast/teachers/) by a closed-vocabulary Mask2Former that
# can be trained end to end with L_pxl, which is what stages 1a/1b need.
#
# Contrastive branch: projection head on the deepest Swin level (stride 32,
# 1536 channels), MLP 1536 -> 128 -> 128 -> 128 without bias; loss settings
# as the student's (lambda_pxl = 0.1, R = 200, fused sampler, T 0.3, hinge 0.5,
# negatives from the global batch of every GPU: see
# cast_student_dinov2-s_dpt.py for the measured reason).
#
# Pre-trained weights theta_T^0: the MMDetection zoo checkpoint of that config
#   checkpoints/mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic_20220407_104949-82f8d28d.pth
#   (https://download.openmmlab.com/mmdetection/v3.0/mask2former/mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic/mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic_20220407_104949-82f8d28d.pth,
#    or `mim download mmdet --config mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic --dest checkpoints`)
# loaded by stage 1a with `load_from` and by stage 1b as the student's
# init_cfg. Its classifier is for 133 COCO-panoptic classes: cls_embed
# (134 x 256) does not fit this head (C + 1 rows). MMEngine loads checkpoints
# with strict=False and skips tensors whose shapes differ, logging a "size
# mismatch for panoptic_head.cls_embed.weight/bias" warning; the classifier
# then keeps its random init and everything else (backbone, pixel decoder,
# transformer decoder, mask embedding) comes from the zoo model. The new
# projection head is missing from the checkpoint (also only a warning).
# The backbone's own init_cfg is None: no ImageNet download, all weights come
# from that checkpoint.
# The head is mask2former_instance_head.py's (the mmdet config above has the
# same 256-d pixel decoder and decoder) with 200 queries and the contrastive
# branch.
_base_ = './mask2former_instance_head.py'

pretrained_teacher = 'checkpoints/mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic_20220407_104949-82f8d28d.pth'  # noqa

depths = [2, 2, 18, 2]

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
    backbone=dict(
        type='SwinTransformer',
        pretrain_img_size=384,
        embed_dims=192,
        depths=depths,
        num_heads=[6, 12, 24, 48],
        window_size=12,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        convert_weights=True,
        frozen_stages=-1,
        init_cfg=None),
    panoptic_head=dict(
        type='CASTMask2FormerHead',
        in_channels=[192, 384, 768, 1536],
        num_queries=200,
        contrast_level=-1,
        projection_head=dict(
            type='PixelProjectionHead',
            in_channels=1536,  # Swin-L stage 4: embed_dims * 2**3
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
