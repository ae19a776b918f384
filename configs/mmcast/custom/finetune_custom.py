# CAST stage 3 on your COCO-format dataset (custom_dataset.py), at the paper's
# sizes: the stage-2 student trains on the labeled split D_l only, with L_sup
# only (../_base_/cast_stages/finetune.py).
#   mim train mmdet configs/mmcast/custom/finetune_custom.py \
#       --launcher pytorch --gpus 4
# Needs work_dirs/distill_custom/ (stage 2's default work dir).
_base_ = [
    '../_base_/cast_stages/finetune.py',
    './_base_/semi_custom_instance.py',
    '../_base_/schedules/cast_90k.py',
]

num_classes = _base_.num_dataset_classes  # len(classes), custom_dataset.py
# (tools/cast_pipeline.py overrides model.init_cfg.checkpoint)
distilled_student = 'work-dir://work_dirs/distill_custom'
model = dict(
    _base_.head_classes, init_cfg=dict(checkpoint=distilled_student))

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 10000
train_cfg = dict(max_iters=max_iters)
param_scheduler = dict(end=max_iters)
