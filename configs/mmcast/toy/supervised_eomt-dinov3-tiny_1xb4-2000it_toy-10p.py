# The toy-size EoMT student (EoMTStudent; Kerssies et al., CVPR 2025) under
# the recipe, data and padding of its DPT twin,
# supervised_dinov3-tiny-dpt_1xb4-2000it_toy-10p.py (10 % labels, 2000
# iterations, batch 4, AdamW 3e-4): the same 4-layer 64-d DINOv3 ViT (patch
# 8, random init) segmenting by itself, with 20 queries joining the tokens
# before its last 2 blocks and one scale block for stride-4 masks; no pixel
# decoder, no transformer decoder. Losses, Hungarian matching (float32 under
# AMP) and the lean instance inference are the twin's Mask2Former ones; the 3
# predictions (where the queries join, after each of the 2 blocks) are all
# supervised. The masked attention of block j anneals from probability 1 to
# 0 over iterations [500 (j + 1), 500 (j + 2)) (EoMT's schedule, scaled to
# 2000 iterations: change the windows with max_iters), so from iteration
# 1500 on it trains, as it always predicts, with plain attention.
#   mim train mmdet configs/mmcast/toy/supervised_eomt-dinov3-tiny_1xb4-2000it_toy-10p.py
_base_ = './supervised_dinov3-tiny-dpt_1xb4-2000it_toy-10p.py'

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

custom_hooks = [
    dict(
        type='MaskAnnealingHook',
        start_iters=[500, 1000],
        end_iters=[1000, 1500],
        power=0.9)
]
