# The real-size EoMT student (EoMTStudent; Kerssies et al., CVPR 2025): the
# DINOv3 ViT-S/16 of student_dinov3-s_dpt.py (timm's
# vit_small_patch16_dinov3: 21.59M parameters, 4 register tokens, RoPE; the
# same converted weights, dinov3_backbones.py) segmenting by itself, with no
# DPT read-out, pixel decoder or transformer decoder. 200 queries join the
# tokens before the last 4 of its 12 blocks (EoMT's own ViT-S and ViT-L
# settings: its COCO / ADE20K / Cityscapes configs use 200 queries and L = 4;
# the DPT student's Mask2Former decoder has 100 queries, refined by 9 layers
# which EoMT does not have); two scale blocks bring the 384-d patch
# features from stride 16 to the stride-4 masks. Losses, Hungarian matching
# (float32 under AMP), class weights and the lean instance inference are
# the DPT student's (mask2former_instance_head.py). Padded to a multiple of
# the patch, 16 (no level at stride 32).
# A config training it sets MaskAnnealingHook's windows for its iterations.
# Parameters (tests/test_eomt_real_size.py) and MACs, attention included
# (tools/analysis/model_cost.py, the DPT student beside it in one run), at
# 1024x2048 (8192 patch tokens + 5 prefix tokens, + 200 queries in the last
# 4 blocks):
#   ViT 21.59 M, total 23.30 M   843 G (ViT 808 G, its attention 629 G;
#                                      DINOv3-S DPT student: 1365 G)
# docs/en/user_guides/model_zoo.md, "the EoMT and DPT students side by side".
_base_ = ['./student_dinov3-s_dpt.py']

eomt_pad_size_divisor = 16  # the patch
data_preprocessor = dict(pad_size_divisor=eomt_pad_size_divisor)

model = dict(
    _delete_=True,
    type='EoMTStudent',
    data_preprocessor=dict(
        _base_.model.data_preprocessor,
        pad_size_divisor=eomt_pad_size_divisor),
    vit=dict(arch=_base_.dinov3_s_backbone.arch, drop_path_rate=0.0),
    num_queries=200,
    num_blocks_with_queries=4,
    criterion=dict(
        type='Mask2FormerCriterion',
        num_things_classes=_base_.num_things_classes,
        num_stuff_classes=_base_.num_stuff_classes,
        loss_cls=_base_.model.panoptic_head.loss_cls,
        loss_mask=_base_.model.panoptic_head.loss_mask,
        loss_dice=_base_.model.panoptic_head.loss_dice),
    panoptic_fusion_head=_base_.model.panoptic_fusion_head,
    train_cfg=_base_.model.train_cfg,
    test_cfg=_base_.model.test_cfg,
    # the converted DINOv3-S weights, under ``vit.`` as the DPT student's
    init_cfg=dict(type='Pretrained',
                  checkpoint=_base_.dinov3_s_checkpoint))

# The ViT trains at x0.1 of the lr as the DPT student's backbone, without
# weight decay on its tokens, LayerNorms and LayerScales (its names are
# under ``vit.``, not ``backbone.vit.``: the stage configs merge these into
# the schedule's custom_keys); the queries (``query_embed``) have no decay
# there already.
_vit = dict(lr_mult=0.1, decay_mult=1.0)
_vit_no_decay = dict(lr_mult=0.1, decay_mult=0.0)
eomt_custom_keys = {
    'vit.': _vit,
    'vit.cls_token': _vit_no_decay,
    'vit.reg_token': _vit_no_decay,
    'vit.norm.': _vit_no_decay,
}
for _i in range(12):
    for _name in ('norm1', 'norm2', 'gamma_1', 'gamma_2'):
        eomt_custom_keys[f'vit.blocks.{_i}.{_name}'] = _vit_no_decay
del _i, _name, _vit, _vit_no_decay
