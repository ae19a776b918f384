# The toy-size EoMT student (EoMTStudent; Kerssies et al., CVPR 2025) under
# the recipe, data and padding of its DPT twin,
# supervised_dinov3-tiny-dpt_1xb4-2000it_toy-10p.py (10 % labels, 2000
# iterations, batch 4, AdamW 3e-4): the same 4-layer 64-d DINOv3 ViT (patch
# 8, random init) segmenting by itself, with 20 queries joining the tokens
# before its last 2 blocks and one scale block for stride-4 masks
# (_base_/models/eomt_dinov3-tiny_toy.py). The 3 predictions (where the
# queries join, after each of the 2 blocks) are all supervised. The masked
# attention of block j anneals from probability 1 to 0 over iterations
# [500 (j + 1), 500 (j + 2)) (EoMT's schedule, scaled to 2000 iterations:
# change the windows with max_iters), so from iteration 1500 on it trains,
# as it always predicts, with plain attention.
#   mim train mmdet configs/mmcast/toy/supervised_eomt-dinov3-tiny_1xb4-2000it_toy-10p.py
_base_ = [
    '../_base_/models/eomt_dinov3-tiny_toy.py',
    '../_base_/datasets/toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

train_dataloader = dict(
    dataset=dict(
        ann_file='annotations/semi/instancesonly_filtered_gtFine_train.1@10.json'))

max_iters = 2000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
custom_hooks = [
    dict(
        type='MaskAnnealingHook',
        start_iters=[500, 1000],
        end_iters=[1000, 1500],
        power=0.9)
]
