# The box-prompted VFM teacher at toy scale: a tiny Grounding-DINO (mmdet's
# GroundingDINO class, ResNet-18 at 1/8 width, 1 encoder/decoder layer, a
# 1-layer 32-d BERT) prompted with the 8 class names, and a tiny SAM 2
# (sam2.1_hiera_t.yaml shrunk by hydra overrides, 128-px input) turning each
# box into a mask. Weights are random; the code path is the real one
# (BoxPromptedTeacher, mmdet GroundingDINO + BertModel, sam2 SAM2Base).
# Drop-in replacement of the Mask2Former teacher of the toy pipeline.
#
# Write the tiny BERT folder and checkpoints first (idempotent, ~2 s):
#   python -m mmcast.testing.tiny_teachers --out work_dirs/tiny_teachers
# then use work_dirs/tiny_teachers/teacher_gdino-tiny_sam2-tiny.pth as the
# teacher checkpoint, e.g.
#   mim test mmdet configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_toy.py \
#       --checkpoint work_dirs/tiny_teachers/teacher_gdino-tiny_sam2-tiny.pth
#   python tools/pseudo_label.py configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_toy.py \
#       work_dirs/tiny_teachers/teacher_gdino-tiny_sam2-tiny.pth --unlabeled-ann ...
# Training it (`mim train`, stage-1 style) trains the Grounding-DINO part
# with the paper's recipe (AdamW, backbone lr x0.1, BERT frozen); SAM 2 stays
# frozen:
#   mim train mmdet configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_toy.py \
#       --cfg-options load_from=work_dirs/tiny_teachers/teacher_gdino-tiny_sam2-tiny.pth
# (the model is kept equal to mmcast.testing.tiny_box_prompted_teacher_cfg by
# the tests)
_base_ = [
    '../_base_/datasets/toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

tiny_root = 'work_dirs/tiny_teachers'
class_names = ('person', 'rider', 'car', 'truck', 'bus', 'train',
               'motorcycle', 'bicycle')
embed = 256  # mmdet's Grounding-DINO encoder hard-codes 256-d text positions

detector = dict(
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
        name=tiny_root + '/bert-tiny',
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
        out_channels=embed,
        act_cfg=None,
        bias=True,
        norm_cfg=dict(type='GN', num_groups=32),
        num_outs=3),
    encoder=dict(
        num_layers=1,
        num_cp=0,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=embed, num_levels=3, num_heads=8, num_points=2,
                dropout=0.0),
            ffn_cfg=dict(
                embed_dims=embed, feedforward_channels=64, ffn_drop=0.0)),
        text_layer_cfg=dict(
            self_attn_cfg=dict(num_heads=4, embed_dims=embed, dropout=0.0),
            ffn_cfg=dict(
                embed_dims=embed, feedforward_channels=64, ffn_drop=0.0)),
        fusion_layer_cfg=dict(
            v_dim=embed, l_dim=embed, embed_dim=64, num_heads=4,
            init_values=1e-4)),
    decoder=dict(
        num_layers=1,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed, num_heads=4, dropout=0.0),
            cross_attn_text_cfg=dict(
                embed_dims=embed, num_heads=4, dropout=0.0),
            cross_attn_cfg=dict(
                embed_dims=embed, num_levels=3, num_heads=8, num_points=2,
                dropout=0.0),
            ffn_cfg=dict(
                embed_dims=embed, feedforward_channels=64, ffn_drop=0.0)),
        post_norm_cfg=None),
    positional_encoding=dict(
        num_feats=embed // 2, normalize=True, offset=0.0, temperature=20),
    bbox_head=dict(
        type='GroundingDINOHead',
        num_classes=256,
        embed_dims=embed,
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

model = dict(
    type='BoxPromptedTeacher',
    detector=detector,
    sam2=dict(
        config_file='configs/sam2.1/sam2.1_hiera_t.yaml',
        checkpoint=tiny_root + '/sam2_tiny.pt',
        hydra_overrides=[
            'model.image_size=128',
            'model.image_encoder.trunk.embed_dim=8',
            'model.image_encoder.trunk.num_heads=1',
            'model.image_encoder.trunk.stages=[1,1,2,1]',
            'model.image_encoder.trunk.global_att_blocks=[3]',
            'model.image_encoder.neck.d_model=32',
            'model.image_encoder.neck.backbone_channel_list=[64,32,16,8]',
            'model.image_encoder.neck.position_encoding.num_pos_feats=32',
            'model.memory_attention.d_model=32',
            'model.memory_attention.num_layers=1',
            'model.memory_attention.layer.d_model=32',
            'model.memory_attention.layer.dim_feedforward=64',
            'model.memory_attention.layer.self_attention.embedding_dim=32',
            'model.memory_attention.layer.self_attention.feat_sizes=[8,8]',
            'model.memory_attention.layer.cross_attention.embedding_dim=32',
            'model.memory_attention.layer.cross_attention.feat_sizes=[8,8]',
            'model.memory_attention.layer.cross_attention.kv_in_dim=16',
            'model.memory_encoder.out_dim=16',
            '++model.memory_encoder.in_dim=32',
            'model.memory_encoder.position_encoding.num_pos_feats=16',
            '++model.memory_encoder.mask_downsampler.embed_dim=32',
            'model.memory_encoder.fuser.layer.dim=32',
            'model.memory_encoder.fuser.num_layers=1',
        ],
        box_batch_size=16),
    classes=class_names,
    score_thr=0.3,
    max_per_img=20)

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.01),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            # longest key first: the BERT lives under
            # detector.language_model.language_backbone
            'language_model': dict(lr_mult=0., decay_mult=0.),
            'backbone': dict(lr_mult=0.1),
        }))
