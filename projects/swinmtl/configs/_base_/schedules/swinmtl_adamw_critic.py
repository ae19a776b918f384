# Copyright (c) mmcast contributors. All rights reserved.
# SwinMTL's optimisation: AdamW (lr 5e-4, weight decay 0.05, layer-wise
# learning-rate decay 0.9 over the SwinV2 blocks) for the generator and Adam
# (lr 1e-4) for the critic, one critic step per generator step
# (SwinMTL.train_step). The configs that use it set `train_cfg` and the
# per-optimizer `param_scheduler` (the schedule's length).
#
# AMP: `--amp` of mmseg's train.py expects a single OptimWrapper; here both
# wrappers must autocast (the critic reads the generator's half-precision
# output, which a float32 critic refuses):
#   --cfg-options optim_wrapper.generator.type=AmpOptimWrapper \
#       optim_wrapper.generator.loss_scale=dynamic \
#       optim_wrapper.critic.type=AmpOptimWrapper \
#       optim_wrapper.critic.loss_scale=dynamic
# The depth head's output layer stays in float32 and the gradient penalty's
# inner gradient is scaled by the critic's loss scale (fp16 would otherwise
# flush it). Tested under CPU fp16 / bf16 autocast
# (projects/swinmtl/tests/test_swinmtl_model.py); not run on a GPU.
optim_wrapper = dict(
    constructor='MultiOptimWrapperConstructor',
    generator=dict(
        type='OptimWrapper',
        optimizer=dict(
            type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.05),
        # the generator's get_layer_depth: patch embedding = layer 0, one
        # layer per SwinV2 block, decoder and heads on top (no decay)
        constructor='mmpretrain.LearningRateDecayOptimWrapperConstructor',
        paramwise_cfg=dict(
            layer_decay_rate=0.9,
            flat_decay_mult=0.0,  # no weight decay on biases and norms
            custom_keys={
                'cpb_mlp': dict(decay_mult=0.0),
                'logit_scale': dict(decay_mult=0.0)
            })),
    critic=dict(
        type='OptimWrapper',
        optimizer=dict(
            type='Adam', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4)))

val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=False,
        interval=8000,
        max_keep_ckpts=3,
        save_last=True),
    # the random states with each checkpoint (exact resume on a CPU)
    random_state=dict(type='RandomStateHook'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
