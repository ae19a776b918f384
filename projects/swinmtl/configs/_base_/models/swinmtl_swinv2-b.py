# Copyright (c) mmcast contributors. All rights reserved.
# SwinMTL (Taghavi et al., IROS 2024): SwinV2-B encoder, shared decoder,
# log-scaled depth head, segmentation head and a PatchGAN WGAN-GP critic on
# [normalised depth, class probabilities].
#
# Encoder weights: the SimMIM pre-trained SwinV2-B that SwinMTL starts from,
# `swin_v2_base_simmim.pth`, from the model zoo linked in the README of
# https://github.com/SwinTransformer/MIM-Depth-Estimation ("Downloads":
# weights for Swin Transformer V2). Put it at
# checkpoints/swin_v2_base_simmim.pth (relative to the directory training
# runs in) or point `model.backbone.init_cfg.checkpoint` at it. The
# `microsoft-swinv2://` prefix converts Microsoft's key layout to
# mmpretrain's while loading
# (projects.swinmtl.swinmtl.models.swinv2_converter).
# Without the file, train from scratch with
#   --cfg-options model.backbone.init_cfg=None
data_preprocessor = dict(
    type='MultiTaskSegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    depth_pad_val=0,  # padded depth is invalid: no loss there
    size=(480, 480),  # training batches: the crop size
    # the in-batch CutMix of SwinMTL: every image gets 1-4 square patches of
    # 1/8 to 1/2 of its side from another image of the batch (image, depth
    # and labels alike)
    batch_augments=[
        dict(
            type='CutMixPatches',
            prob=1.0,
            num_patches=(1, 4),
            patch_ratio=(0.125, 0.5))
    ],
    test_cfg=dict(size_divisor=32))
model = dict(
    type='SwinMTL',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmpretrain.SwinTransformerV2',
        arch='base',  # embed 128, depths 2/2/18/2, heads 4/8/16/32
        img_size=480,
        window_size=[22, 22, 22, 11],
        pretrained_window_sizes=[12, 12, 12, 6],
        drop_path_rate=0.3,
        out_indices=(3, ),  # only the stride-32 stage feeds the decoder
        pad_small_map=True,
        # shifted windows in every second block of stages 1-2 only (the
        # paper's code: use_shift True True False False)
        stage_cfgs=[
            dict(),
            dict(),
            dict(block_cfgs=dict(shift=False)),
            dict(block_cfgs=dict(shift=False))
        ],
        init_cfg=dict(
            type='Pretrained',
            checkpoint='microsoft-swinv2://checkpoints/swin_v2_base_simmim.pth'
        )),
    decoder=dict(
        type='SwinMTLDecoder',
        in_channels=1024,
        deconv_channels=32,
        num_deconvs=3,
        out_channels=128),
    # ablation "log depth off": depth_head=dict(depth_scaling='linear')
    depth_head=dict(
        type='SwinMTLDepthHead',
        in_channels=128,
        channels=128,
        depth_scaling='log',
        min_depth=1e-3,
        max_depth=80.0),
    seg_head=dict(
        type='SwinMTLSegHead',
        num_classes=19,
        in_channels=128,
        channels=128),
    # ablation "critic off": critic=None and one optimizer (see the
    # *_no-critic.py configs)
    critic=dict(
        type='PatchGANCritic', channels=(64, 128, 256, 512),
        strides=(2, 2, 2, 1)),
    loss_depth=dict(type='SiLogDepthLoss', variance_focus=0.5),
    loss_seg=dict(type='CrossEntropyLoss', avg_non_ignore=True),
    adv_weight=0.1,
    gp_weight=100.0,
    ignore_index=255)
