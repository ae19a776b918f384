# Copyright (c) mmcast contributors. All rights reserved.
# Ablation "critic off": SwinMTL on Cityscapes trained with cross-entropy +
# SiLog only (no WGAN-GP critic): one AdamW optimizer with the generator's
# settings (layer-wise decay over the whole model, as SwinMTL.get_layer_depth
# numbers it) and the generator's schedule.
#   mim train mmseg \
#       projects/swinmtl/configs/swinmtl_swinv2-b_cityscapes_no-critic.py
_base_ = './swinmtl_swinv2-b_cityscapes.py'

model = dict(critic=None)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer={{_base_.optim_wrapper.generator.optimizer}},
    constructor='mmpretrain.LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg={{_base_.optim_wrapper.generator.paramwise_cfg}})
param_scheduler = {{_base_.param_scheduler.generator}}
