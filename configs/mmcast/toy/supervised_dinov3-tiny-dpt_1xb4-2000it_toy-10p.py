# The labels-only toy recipe (supervised_student_toy.py: the 10 % labeled
# split, 2000 iterations, batch 4, AdamW 3e-4) for the toy-size DINOv3
# student: a 4-layer 64-d ViT + DPT + 2-layer Mask2Former decoder, random
# init (_base_/models/student_dinov3-tiny_dpt_toy.py). Beside its DINOv2 twin
# it compares the two backbones under one recipe (three seeds in
# docs/en/user_guides/foundation_models.md).
#   mim train mmdet configs/mmcast/toy/supervised_dinov3-tiny-dpt_1xb4-2000it_toy-10p.py
_base_ = [
    '../_base_/models/student_dinov3-tiny_dpt_toy.py',
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
