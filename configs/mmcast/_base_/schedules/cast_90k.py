# The CAST student schedule (spec "Student schedule", from the authors' code):
# AdamW lr 5e-5, weight decay 0.1, poly decay (power 0.9) over 90k
# iterations, batch 8, backbone lr x0.1, gradient clipping at max_norm 0.01
# (Mask2Former's full-model clip), mixed precision.
#
# Batch and lr: the lr above is the recipe's at a global batch of 8
# (auto_scale_lr.base_batch_size). The dataloaders set the batch PER GPU
# (train_dataloader.batch_size, 2), so the global batch is GPUs x per-GPU:
# 4xb2 = 8 trains the recipe as written. On another number of GPUs (or
# images per GPU) pass --auto-scale-lr (auto_scale_lr.enable=True): mmcast's
# BatchScaledRunner (_base_/cast_runtime.py) scales the lr by the square
# root of global batch / 8, the rule of Adam-type optimisers
# (mmcast/engine/batch_scaling.py; not MMEngine's linear one); the
# iterations stay 90k, so the epochs follow the batch. tools/cast_pipeline.py
# applies the same rule from --nproc / --nnodes (and --batch-per-gpu) and
# prints the global batch, lr and epochs of every stage before it starts.
# Semi-supervised stages need >= 2 images per GPU (one labeled + one
# pseudo-labeled image, MultiSourceSampler source_ratio [1, 1]); with fewer
# the run is refused. More images per GPU: train_dataloader.batch_size=N and
# train_dataloader.sampler.batch_size=N for the semi-supervised stages.
#
# AMP: AmpOptimWrapper needs a GPU (MMEngine refuses it on CPU). On CPU run
# with --cfg-options optim_wrapper.type=OptimWrapper.
max_iters = 90000
val_interval = 5000

train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# --- parameter-wise settings -------------------------------------------------
# MMEngine matches custom_keys as substrings of the parameter name, longest
# key first, and a parameter matched by a custom key does NOT get
# norm_decay_mult. So the backbone's norms and embeddings (all under the
# 'backbone' key) are listed explicitly with decay_mult=0, as in MMDetection's
# Swin Mask2Former configs. Keys for both backbone families are listed; keys
# that match no parameter are ignored.
backbone_no_decay = dict(lr_mult=0.1, decay_mult=0.0)
no_decay = dict(lr_mult=1.0, decay_mult=0.0)
custom_keys = {
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    # decoder queries and level embeddings (both heads)
    'query_embed': no_decay,
    'query_feat': no_decay,
    'level_embed': no_decay,
    # DINOv2 ViT (mmpretrain names): tokens, position embedding, LayerNorms
    # (ln1/ln2 of each block, final ln1) and LayerScale gammas (no decay as
    # in DINOv2's own recipe).
    'backbone.cls_token': backbone_no_decay,
    'backbone.pos_embed': backbone_no_decay,
    'backbone.ln1': backbone_no_decay,
    # The DPT read-out modules live under backbone. but are new (random
    # init): they train at the head's rate, only the pre-trained ViT gets
    # x0.1 (see mmcast/models/backbones/dinov2_multilevel.py). Remove these
    # two keys to slow them down as well.
    'backbone.readout_projects': dict(lr_mult=1.0, decay_mult=1.0),
    'backbone.reassemble_': dict(lr_mult=1.0, decay_mult=1.0),
    # Swin (the Mask2Former Swin-L teacher), as in MMDetection's configs
    'absolute_pos_embed': backbone_no_decay,
    'relative_position_bias_table': backbone_no_decay,
    'backbone.patch_embed.norm': backbone_no_decay,
    'backbone.norm': backbone_no_decay,  # backbone.norm0 ... norm3
}
# ViT blocks (up to ViT-L's 24)
for _i in range(24):
    custom_keys[f'backbone.layers.{_i}.ln1'] = backbone_no_decay
    custom_keys[f'backbone.layers.{_i}.ln2'] = backbone_no_decay
    custom_keys[f'backbone.layers.{_i}.attn.gamma1'] = backbone_no_decay
    custom_keys[f'backbone.layers.{_i}.ffn.gamma2'] = backbone_no_decay
# Swin-L blocks: depths (2, 2, 18, 2)
for _stage, _num_blocks in enumerate((2, 2, 18, 2)):
    for _block in range(_num_blocks):
        custom_keys[f'backbone.stages.{_stage}.blocks.{_block}.norm'] = \
            backbone_no_decay
    if _stage < 3:
        custom_keys[f'backbone.stages.{_stage}.downsample.norm'] = \
            backbone_no_decay
del _i, _stage, _num_blocks, _block

optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(
        type='AdamW', lr=5e-5, weight_decay=0.1, eps=1e-8,
        betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    # norms outside the backbone (decoder LayerNorms, GroupNorms)
    paramwise_cfg=dict(custom_keys=custom_keys, norm_decay_mult=0.0))

param_scheduler = dict(
    type='PolyLR', eta_min=0, power=0.9, begin=0, end=max_iters,
    by_epoch=False)

auto_scale_lr = dict(enable=False, base_batch_size=8)
