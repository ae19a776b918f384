# The toy box-prompted teacher (tiny Grounding-DINO + tiny SAM 2) as base
# variables (toy_gdino_detector, toy_sam2, ...), not as ``model``: a stage
# config puts them into a CASTDistiller's student while inheriting the
# semi-supervised data, hooks and schedule of a Mask2Former-teacher stage
# config (two bases must not both define ``model`` or ``train_dataloader``),
# see configs/mmcast/cast/
# cast-adapt-teacher-selftrain_gdino-tiny_sam2-tiny_1xb4-500it_toy-semi-10p.py.
# configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_toy.py builds its model
# from these too, so the checkpoints of all its stages are interchangeable.
#
# The tiny BERT folder and SAM 2 checkpoint are read from the folder named by
# the environment variable MMCAST_TINY_TEACHERS (default
# work_dirs/tiny_teachers), written (idempotently) by
#   python -m mmcast.toy.tiny_teachers --out work_dirs/tiny_teachers
toy_tiny_teachers_root = '{{$MMCAST_TINY_TEACHERS:work_dirs/tiny_teachers}}'
# mmdet's Grounding-DINO encoder hard-codes 256-d text positions
toy_gdino_embed = 256

toy_gdino_detector = dict(
    type='GroundingDINO',
    num_queries=30,
    with_box_refine=True,
    as_two_stage=True,
    num_feature_levels=3,
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_mask=False),
    language_model=dict(
        type='BertModel',
        name=toy_tiny_teachers_root + '/bert-tiny',
        max_tokens=256,
        pad_to_max=False,
        use_sub_sentence_represent=True,
        special_tokens_list=['[CLS]', '[SEP]', '.', '?'],
        add_pooling_layer=False),
    backbone=dict(
        type='ResNet',
        depth=18,
        base_channels=8,
        num_stages=4,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=None),
    neck=dict(
        type='ChannelMapper',
        in_channels=[16, 32, 64],
        kernel_size=1,
        out_channels=toy_gdino_embed,
        act_cfg=None,
        bias=True,
        norm_cfg=dict(type='GN', num_groups=32),
        num_outs=3),
    encoder=dict(
        num_layers=1,
        num_cp=0,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=toy_gdino_embed, num_levels=3, num_heads=8,
                num_points=2, dropout=0.0),
            ffn_cfg=dict(
                embed_dims=toy_gdino_embed, feedforward_channels=64,
                ffn_drop=0.0)),
        text_layer_cfg=dict(
            self_attn_cfg=dict(
                num_heads=4, embed_dims=toy_gdino_embed, dropout=0.0),
            ffn_cfg=dict(
                embed_dims=toy_gdino_embed, feedforward_channels=64,
                ffn_drop=0.0)),
        fusion_layer_cfg=dict(
            v_dim=toy_gdino_embed, l_dim=toy_gdino_embed, embed_dim=64,
            num_heads=4, init_values=1e-4)),
    decoder=dict(
        num_layers=1,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=toy_gdino_embed, num_heads=4, dropout=0.0),
            cross_attn_text_cfg=dict(
                embed_dims=toy_gdino_embed, num_heads=4, dropout=0.0),
            cross_attn_cfg=dict(
                embed_dims=toy_gdino_embed, num_levels=3, num_heads=8,
                num_points=2, dropout=0.0),
            ffn_cfg=dict(
                embed_dims=toy_gdino_embed, feedforward_channels=64,
                ffn_drop=0.0)),
        post_norm_cfg=None),
    positional_encoding=dict(
        num_feats=toy_gdino_embed // 2, normalize=True, offset=0.0,
        temperature=20),
    bbox_head=dict(
        type='GroundingDINOHead',
        num_classes=256,
        embed_dims=toy_gdino_embed,
        sync_cls_avg_factor=True,
        contrastive_cfg=dict(max_text_len=256, log_scale='auto', bias=True),
        loss_cls=dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    dn_cfg=dict(
        label_noise_scale=0.5,
        box_noise_scale=1.0,
        group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=10)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='BinaryFocalLossCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=30))

toy_sam2 = dict(
    config_file='configs/sam2.1/sam2.1_hiera_t.yaml',
    checkpoint=toy_tiny_teachers_root + '/sam2_tiny.pt',
    hydra_overrides=[
        'model.image_size=128',
        'model.image_encoder.trunk.embed_dim=32',
        'model.image_encoder.trunk.num_heads=2',
        'model.image_encoder.trunk.stages=[1,1,2,1]',
        'model.image_encoder.trunk.global_att_blocks=[3]',
        'model.image_encoder.neck.d_model=128',
        'model.image_encoder.neck.backbone_channel_list=[256,128,64,32]',
        'model.image_encoder.neck.position_encoding.num_pos_feats=128',
        'model.memory_attention.d_model=128',
        'model.memory_attention.num_layers=1',
        'model.memory_attention.layer.d_model=128',
        'model.memory_attention.layer.dim_feedforward=64',
        'model.memory_attention.layer.self_attention.embedding_dim=128',
        'model.memory_attention.layer.self_attention.feat_sizes=[8,8]',
        'model.memory_attention.layer.cross_attention.embedding_dim=128',
        'model.memory_attention.layer.cross_attention.feat_sizes=[8,8]',
        'model.memory_attention.layer.cross_attention.kv_in_dim=16',
        'model.memory_encoder.out_dim=16',
        '++model.memory_encoder.in_dim=128',
        'model.memory_encoder.position_encoding.num_pos_feats=16',
        '++model.memory_encoder.mask_downsampler.embed_dim=128',
        'model.memory_encoder.fuser.layer.dim=128',
        'model.memory_encoder.fuser.num_layers=1',
    ],
    box_batch_size=16)
toy_gdino_score_thr = 0.3
toy_gdino_max_per_img = 20

# Stage-1 adaptation of the Grounding-DINO part (the paper's recipe): AdamW,
# backbone lr x0.1, the BERT frozen. custom_keys match substrings, so the
# names work with or without a CASTDistiller's "student." prefix; replaces
# the schedule's optimiser wholesale (_delete_).
toy_gdino_optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.01),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'language_model': dict(lr_mult=0., decay_mult=0.),
            'backbone': dict(lr_mult=0.1),
        }))
