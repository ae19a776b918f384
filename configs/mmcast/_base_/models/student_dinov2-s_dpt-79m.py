# Spec-width variant of the CAST student (student_dinov2-s_dpt-52m.py): the
# same DINOv2-S + DPT + Mask2Former architecture with the paper's "384
# channels" taken literally, i.e. 384-d DPT fusion blocks and a 384-d decoder
# (12 heads, FFN 2048). 79M parameters (the default has 51M):
#   backbone 29.40 M, DPT pixel decoder 24.30 M, decoder + heads 25.37 M;
#   MACs, attention included (tools/analysis/model_cost.py): at 1024x2048
#   backbone 1378 G, head 1532 G, total 2910 G; at 512x1024 143 / 395 / 538 G.
# To train it, name this file instead of student_dinov2-s_dpt-52m.py in the
# _base_ of cast_student_dinov2-s_dpt.py (CAST stages 2, 3) or of
# ../cast_stages/supervised_student.py (baseline).
_base_ = './student_dinov2-s_dpt-52m.py'

embed_dims = 384
num_heads = 12
ffn_channels = 2048
model = dict(
    panoptic_head=dict(
        feat_channels=embed_dims,
        out_channels=embed_dims,
        positional_encoding=dict(num_feats=embed_dims // 2),
        transformer_decoder=dict(
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=embed_dims, num_heads=num_heads),
                cross_attn_cfg=dict(
                    embed_dims=embed_dims, num_heads=num_heads),
                ffn_cfg=dict(
                    embed_dims=embed_dims,
                    feedforward_channels=ffn_channels)))))
