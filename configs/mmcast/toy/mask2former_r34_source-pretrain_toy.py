# The toy stand-in for a vision foundation model: the larger R-34 Mask2Former
# pre-trained on a separate, domain-shifted toy corpus (other colours,
# backgrounds and sizes; disjoint images), so that its zero-shot accuracy on
# the target toy data is imperfect and CAST's stage 1 is a real adaptation.
# Like a foundation model, it sees far more (source) images than the target
# task has: 1500, against 200 target images of which 20 are labeled.
#   python tools/make_toy_dataset.py --out data/toy_source --style source \
#       --num-train 1500
#   mim train mmdet configs/mmcast/toy/mask2former_r34_source-pretrain_toy.py
_base_ = [
    '../_base_/models/cast_mask2former_r34_toy_teacher.py',
    '../_base_/datasets/toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

data_root = 'data/toy_source/'
# Plain supervised pre-training: no contrastive term.
model = dict(panoptic_head=dict(loss_pixel_contrast=None))
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file=data_root + 'annotations/instancesonly_filtered_gtFine_val.json',
    metric=['segm'])
test_evaluator = val_evaluator

max_iters = 1200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
