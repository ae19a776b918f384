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
# as the student's (lambda_pxl = 0.1, R = 200, fused sampler, T 0.3, hinge 0.5).
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
pretrained_teacher = 'checkpoints/mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic_20220407_104949-82f8d28d.pth'  # noqa

num_things_classes = 8
num_stuff_classes = 0
num_classes = num_things_classes + num_stuff_classes
depths = [2, 2, 18, 2]

data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_size_divisor=32,
    pad_mask=True,
    mask_pad_value=0,
    pad_seg=False)

model = dict(
    type='CASTMask2Former',
    data_preprocessor=data_preprocessor,
    strong_view=dict(type='PhotometricStrongView'),
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
        strides=[4, 8, 16, 32],
        feat_channels=256,
        out_channels=256,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=200,
        num_transformer_feat_level=3,
        pixel_decoder=dict(
            type='MSDeformAttnPixelDecoder',
            num_outs=3,
            norm_cfg=dict(type='GN', num_groups=32),
            act_cfg=dict(type='ReLU'),
            encoder=dict(
                num_layers=6,
                layer_cfg=dict(
                    self_attn_cfg=dict(
                        embed_dims=256,
                        num_heads=8,
                        num_levels=3,
                        num_points=4,
                        dropout=0.0,
                        batch_first=True),
                    ffn_cfg=dict(
                        embed_dims=256,
                        feedforward_channels=1024,
                        num_fcs=2,
                        ffn_drop=0.0,
                        act_cfg=dict(type='ReLU', inplace=True)))),
            positional_encoding=dict(num_feats=128, normalize=True)),
        enforce_decoder_input_project=False,
        positional_encoding=dict(num_feats=128, normalize=True),
        transformer_decoder=dict(
            return_intermediate=True,
            num_layers=9,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=256, num_heads=8, dropout=0.0,
                    batch_first=True),
                cross_attn_cfg=dict(
                    embed_dims=256, num_heads=8, dropout=0.0,
                    batch_first=True),
                ffn_cfg=dict(
                    embed_dims=256,
                    feedforward_channels=2048,
                    num_fcs=2,
                    ffn_drop=0.0,
                    act_cfg=dict(type='ReLU', inplace=True))),
            init_cfg=None),
        loss_cls=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=2.0,
            reduction='mean',
            class_weight=[1.0] * num_classes + [0.1]),
        loss_mask=dict(
            type='CrossEntropyLoss',
            use_sigmoid=True,
            reduction='mean',
            loss_weight=5.0),
        loss_dice=dict(
            type='DiceLoss',
            use_sigmoid=True,
            activate=True,
            reduction='mean',
            naive_dice=True,
            eps=1.0,
            loss_weight=5.0),
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
            temperature=0.3,
            neg_margin=0.5,
            loss_weight=0.1)),
    panoptic_fusion_head=dict(
        type='MaskFormerFusionHead',
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        loss_panoptic=None,
        init_cfg=None),
    train_cfg=dict(
        num_points=12544,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75,
        assigner=dict(
            type='FP32HungarianAssigner',
            match_costs=[
                dict(type='ClassificationCost', weight=2.0),
                dict(
                    type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
                dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)
            ]),
        sampler=dict(type='MaskPseudoSampler')),
    test_cfg=dict(
        panoptic_on=False,
        semantic_on=False,
        instance_on=True,
        max_per_image=100,
        iou_thr=0.8,
        filter_low_score=True))
