# The one Mask2Former instance-segmentation head every Mask2Former model base
# of mmcast inherits (mask2former_r18_toy.py, student_dinov2-s_dpt-52m.py,
# student_r50_msdeform.py, cast_teacher_mask2former_swin-l.py): the head,
# losses, matching and instance-only inference of MMDetection's
#   mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py
# (256-d MSDeformAttn pixel decoder with 6 encoder layers, 100 queries,
# 9 masked-attention decoder layers of 8 heads and FFN 2048, 12544 points),
# with 8 thing classes (Cityscapes; stage configs of other datasets set
# num_things_classes, loss_cls's class_weight and the fusion head's
# num_things_classes) and the Hungarian matching computed in float32 under
# AMP (FP32HungarianAssigner), the losses too (FP32LossMask2FormerHead: in
# fp16 the stock head's loss_mask normaliser overflows from 6 target masks
# per GPU on). Inference keeps stock Mask2Former's results but resamples
# only the masks it keeps (LeanMaskFormerFusionHead, fed the 1/4-resolution
# mask logits by CASTMask2Former), at most num_queries x num_classes per
# image, so that max_per_image works with any class count (1 class, 20
# queries). test_cfg.score_thr (0 here, as stock) drops lower-scored
# detections before their masks are resampled.
#
# No backbone: an inheriting base adds one and sets the head's in_channels
# (and strides where they are not 4/8/16/32); it overrides only what its
# model changes. Variables here are evaluated here, so a base that changes
# the width overrides every nested embed_dims / num_feats itself (see
# mask2former_r18_toy.py).
#
# Not inherited from mmdet's own config (`_base_ = 'mmdet::...'`): that file
# is a whole experiment (COCO-panoptic datasets, 50-epoch schedule, runtime)
# whose top-level keys no child config could remove.
num_things_classes = 8
num_stuff_classes = 0
num_classes = num_things_classes + num_stuff_classes

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
    panoptic_head=dict(
        type='FP32LossMask2FormerHead',
        strides=[4, 8, 16, 32],
        feat_channels=256,
        out_channels=256,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=100,
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
            loss_weight=5.0)),
    panoptic_fusion_head=dict(
        type='LeanMaskFormerFusionHead',
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
        score_thr=0.0,
        iou_thr=0.8,
        filter_low_score=True))
