# DINOv3 backbones of the CAST student (DINOv3MultiLevel: timm's DINOv3 ViT
# read out at blocks 2, 5, 8, 11 and reassembled DPT-style to 96/192/384/768
# channels as the DINOv2-S student's). Patch 16 instead of 14, so the levels
# are at strides 4/8/16/32 (patch / (4, 2, 1, 0.5)) and the batch is padded
# to a multiple of 32. Variables only (no `model`), so that both the student
# model bases and the thin DINOv3 stage configs (which inherit a DINOv2
# stage config, whose `model` a second base may not define again) can read
# them.
#
# Weights: Meta's DINOv3 backbones come under the DINOv3 license (no public
# URL); convert the downloaded file to the paths below with
#   python tools/model_converters/dinov3_to_mmcast.py \
#       dinov3_vits16_pretrain_lvd1689m-08c60483.pth \
#       checkpoints/dinov3_vits16_pretrain_mmcast.pth
# (likewise dinov3_vits16plus_pretrain_*.pth; timm's files convert too).
dinov3_s_checkpoint = 'checkpoints/dinov3_vits16_pretrain_mmcast.pth'
dinov3_splus_checkpoint = 'checkpoints/dinov3_vits16plus_pretrain_mmcast.pth'

dinov3_s_backbone = dict(
    type='DINOv3MultiLevel',
    arch='vit_small_patch16_dinov3',  # ViT-S/16, 4 registers, RoPE
    out_indices=(2, 5, 8, 11),
    out_channels=(96, 192, 384, 768),
    resize_factors=(4, 2, 1, 0.5),
    readout_type='project',
    norm_intermediate=True,
    drop_path_rate=0.0,
    init_cfg=dict(type='Pretrained', checkpoint=dinov3_s_checkpoint))
dinov3_splus_backbone = dict(
    dinov3_s_backbone,
    arch='vit_small_plus_patch16_dinov3',  # ViT-S+/16: SwiGLU FFN
    init_cfg=dict(type='Pretrained', checkpoint=dinov3_splus_checkpoint))

# Pad to a multiple of 32 = patch 16 / smallest resize 0.5 (no internal
# padding in the backbone; every level is exactly H / stride).
dinov3_pad_size_divisor = 32
dinov3_strides = [4, 8, 16, 32]

# No weight decay for the DINOv3 tokens, LayerNorms and LayerScales (timm
# names under backbone.vit.), as the DINOv2 keys of ../schedules/cast_90k.py;
# the stage configs merge them into its custom_keys.
_no_decay = dict(lr_mult=0.1, decay_mult=0.0)
dinov3_custom_keys = {
    'backbone.vit.cls_token': _no_decay,
    'backbone.vit.reg_token': _no_decay,
    'backbone.vit.norm.': _no_decay,
}
for _i in range(12):
    for _name in ('norm1', 'norm2', 'gamma_1', 'gamma_2'):
        dinov3_custom_keys[f'backbone.vit.blocks.{_i}.{_name}'] = _no_decay
del _i, _name, _no_decay
