# Labels-only baseline of CAST on your COCO-format dataset
# (custom_dataset.py), at the paper's sizes: the student trained on the
# labeled split D_l alone (../_base_/cast_stages/supervised_student.py), for
# as many iterations as stages 2 + 3 (90000 + 10000).
#   mim train mmdet configs/mmcast/custom/supervised_student_custom.py \
#       --launcher pytorch --gpus 4
_base_ = [
    '../_base_/cast_stages/supervised_student.py',
    './_base_/semi_custom_instance.py',
    '../_base_/schedules/cast_90k.py',
]

num_classes = _base_.num_dataset_classes  # len(classes), custom_dataset.py
model = _base_.head_classes

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 100000
train_cfg = dict(max_iters=max_iters)
param_scheduler = dict(end=max_iters)
