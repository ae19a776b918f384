# Labels-only baseline of the toy CAST pipeline: the same R-18 student trained
# on the labeled 10 % split alone, for as many iterations as stages 2 + 3.
#   mim train mmdet configs/mmcast/cast/supervised_mask2former-r18_1xb4-1800it_toy-10p.py
_base_ = '../toy/mask2former_r18_1xb4-1500it_toy.py'

train_dataloader = dict(
    dataset=dict(
        ann_file='annotations/semi/instancesonly_filtered_gtFine_train.1@10.json'))  # noqa: E501

max_iters = 1800
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
