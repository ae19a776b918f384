# The toy-size EoMT student (EoMTStudent; Kerssies et al., CVPR 2025): the
# 4-layer 64-d DINOv3 ViT of student_dinov3-tiny_dpt_toy.py (patch 8, random
# init) segmenting by itself, with 20 queries joining the tokens before its
# last 2 blocks and one scale block for stride-4 masks; no pixel decoder, no
# transformer decoder. Losses, Hungarian matching (float32 under AMP) and the
# lean instance inference are its DPT twin's Mask2Former ones. A config
# training it sets MaskAnnealingHook's windows for its iterations.
_base_ = './student_dinov3-tiny_dpt_toy.py'

model = dict(
    _delete_=True,
    type='EoMTStudent',
    data_preprocessor={{_base_.model.data_preprocessor}},
    vit=dict(
        arch={{_base_.model.backbone.arch}},
        vit_cfg={{_base_.model.backbone.vit_cfg}}),
    num_queries=20,
    num_blocks_with_queries=2,
    criterion=dict(
        type='Mask2FormerCriterion',
        num_things_classes={{_base_.num_things_classes}},
        num_stuff_classes={{_base_.num_stuff_classes}},
        loss_cls={{_base_.model.panoptic_head.loss_cls}},
        loss_mask={{_base_.model.panoptic_head.loss_mask}},
        loss_dice={{_base_.model.panoptic_head.loss_dice}}),
    panoptic_fusion_head={{_base_.model.panoptic_fusion_head}},
    train_cfg={{_base_.model.train_cfg}},
    test_cfg={{_base_.model.test_cfg}},
    init_cfg=None)
