# Copyright (c) mmcast contributors. All rights reserved.
# SwinMTL on the toy depth scenes, CPU-sized: a 4-stage SwinV2 of 32-256
# channels with 4x4 / 2x2 windows, a 32-channel decoder and heads, a small
# PatchGAN critic; batch 4 of 64x64 crops of the 96x64 images, 1000
# iterations (a few minutes on one CPU core). Same losses, optimisers,
# critic and augmentations as the real-size configs.
#
# From the repository root. Data (200 train / 50 val images; the root can
# be moved with the environment variable MMCAST_TOY_DEPTH_ROOT, trailing
# '/'):
#   python -c "from projects.swinmtl.swinmtl.datasets import \
#       make_toy_depth_dataset; \
#       make_toy_depth_dataset('data/toy_depth/', height=64, width=96)"
# Train, test, resume with the stock scripts of MMSegmentation (mim runs
# mmseg's tools/train.py and tools/test.py from its installed package; they
# import the project through the repository root on PYTHONPATH):
#   export PYTHONPATH=$PWD:$PYTHONPATH
#   mim train mmseg projects/swinmtl/configs/swinmtl_swinv2-tiny_toy.py
#   mim test mmseg projects/swinmtl/configs/swinmtl_swinv2-tiny_toy.py \
#       --checkpoint work_dirs/swinmtl_swinv2-tiny_toy/iter_1000.pth
#   mim train mmseg projects/swinmtl/configs/swinmtl_swinv2-tiny_toy.py \
#       --resume
# Pictures (input | depth | segmentation):
#   python projects/swinmtl/tools/show_depth_seg.py \
#       projects/swinmtl/configs/swinmtl_swinv2-tiny_toy.py \
#       work_dirs/swinmtl_swinv2-tiny_toy/iter_1000.pth --num 8 \
#       --out-dir work_dirs/swinmtl_swinv2-tiny_toy/pictures
# Ablations: *_no-critic.py, *_linear-depth.py, *_no-aug.py.
_base_ = [
    './_base_/models/swinmtl_swinv2-b.py',
    './_base_/datasets/toy_depth_seg.py',
    './_base_/schedules/swinmtl_adamw_critic.py',
    './_base_/swinmtl_runtime.py',
]

model = dict(
    data_preprocessor=dict(size=(64, 64)),
    backbone=dict(
        _delete_=True,
        type='mmpretrain.SwinTransformerV2',
        arch=dict(
            embed_dims=32,
            depths=[1, 1, 2, 1],
            num_heads=[1, 2, 4, 8],
            extra_norm_every_n_blocks=0),
        img_size=64,
        window_size=[4, 4, 4, 2],
        drop_path_rate=0.1,
        out_indices=(3, ),
        pad_small_map=True),
    decoder=dict(in_channels=256, deconv_channels=32, out_channels=32),
    depth_head=dict(in_channels=32, channels=32),
    seg_head=dict(num_classes=5, in_channels=32, channels=32),
    critic=dict(channels=(16, 32, 64, 64)))

max_iters = 1000
param_scheduler = dict(
    generator=[
        dict(
            type='LinearLR',
            start_factor=3e-5 / 5e-4,
            by_epoch=False,
            begin=0,
            end=max_iters // 2),
        dict(
            type='PolyLR',
            power=0.9,
            eta_min=3e-5,
            by_epoch=False,
            begin=max_iters // 2,
            end=max_iters)
    ],
    critic=[])
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=2))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
