# Ablation student (spec "Models": DPT 30.7 vs FPN 28.9 mask AP): the paper's
# DINOv2-S student with the DPT pixel decoder replaced by an FPN-like one
# (mmdet's PixelDecoder top-down path, GN, 256 channels as the DPT's) that
# hands its three coarsest top-down outputs (strides 28, 14, 7) to the
# Mask2Former decoder and a 3x3 conv of the finest (stride 3.5) as mask
# features.
_base_ = './student_dinov2-s_dpt-52m.py'

model = dict(
    panoptic_head=dict(
        pixel_decoder=dict(
            _delete_=True,
            type='MultiLevelFPNPixelDecoder',
            strides=[3.5, 7, 14, 28],
            num_outs=3,
            norm_cfg=dict(type='GN', num_groups=32),
            act_cfg=dict(type='ReLU'),
            # stub for Mask2FormerHead's assertion (no encoder in the FPN)
            encoder=dict(layer_cfg=dict(self_attn_cfg=dict(num_levels=3))))))
