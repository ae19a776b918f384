# CAST stage 1a on your COCO-format dataset (custom_dataset.py: data root,
# classes, split), at the paper's sizes: fine-tune the pre-trained teacher
# theta_T^0 (Mask2Former Swin-L, by default MMDetection's COCO-panoptic zoo
# weights) on the labeled split D_l -> theta_T'
# (../_base_/cast_stages/adapt_teacher.py). Its classifier (133 COCO-panoptic
# classes) does not fit your classes: MMEngine skips it (size-mismatch
# warning) and it starts from random init. This config's model is also the
# teacher architecture of stages 1b and 2 (model.teacher).
#   mim train mmdet configs/mmcast/custom/adapt_teacher_custom.py \
#       --launcher pytorch --gpus 4
# Batch 2 per GPU: 4 GPUs give the total of 8. Iterations as for COCO (our
# choice); scale them with your dataset.
_base_ = [
    '../_base_/cast_stages/adapt_teacher.py',
    './_base_/semi_custom_instance.py',
]

num_classes = _base_.num_dataset_classes  # len(classes), custom_dataset.py
model = _base_.head_classes

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 20000
train_cfg = dict(max_iters=max_iters)
param_scheduler = dict(end=max_iters)
