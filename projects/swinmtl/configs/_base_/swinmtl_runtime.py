# Copyright (c) mmcast contributors. All rights reserved.
# MMSegmentation's default runtime for SwinMTL: the SwinMTL modules register
# into mmseg's registries when the config imports projects.swinmtl.swinmtl
# (the repository root on PYTHONPATH), so that the stock `mim train mmseg` /
# `mim test mmseg` drive these configs; mmcast brings the AtomicCheckpointHook
# of the schedule (MMEngine's root registry, found from every scope).
_base_ = 'mmseg::_base_/default_runtime.py'

custom_imports = dict(
    imports=['mmcast', 'projects.swinmtl.swinmtl'],
    allow_failed_imports=False)
# mmseg's transforms (its Resize moves gt_depth_map with the image; mmcv's
# does not) and metrics.
default_scope = 'mmseg'
# Multi-process training (`--launcher pytorch`): the generator and the critic
# have their own optimizers, so each is wrapped in its own DDP (MMEngine's GAN
# wrapper; SwinMTL.train_step runs the two backward passes itself). Ignored in
# single-process runs.
model_wrapper_cfg = dict(
    type='MMSeparateDistributedDataParallel', find_unused_parameters=False)
