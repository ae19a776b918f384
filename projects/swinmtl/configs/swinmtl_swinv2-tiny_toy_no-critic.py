# Copyright (c) mmcast contributors. All rights reserved.
# Toy ablation "critic off": cross-entropy + SiLog only, one AdamW optimizer
# with the generator's settings and schedule (same seed and data order as
# swinmtl_swinv2-tiny_toy.py).
#   mim train mmseg \
#       projects/swinmtl/configs/swinmtl_swinv2-tiny_toy_no-critic.py
_base_ = './swinmtl_swinv2-tiny_toy.py'

model = dict(critic=None)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer={{_base_.optim_wrapper.generator.optimizer}},
    constructor='mmpretrain.LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg={{_base_.optim_wrapper.generator.paramwise_cfg}})
param_scheduler = {{_base_.param_scheduler.generator}}
