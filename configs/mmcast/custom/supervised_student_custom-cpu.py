# Labels-only baseline of CAST on your COCO-format dataset
# (custom_dataset.py), CPU-sized: the same R-18 Mask2Former student (no
# L_pxl, no teacher) trained on the labeled split D_l alone, for as many
# iterations as stages 2 + 3 (1600 + 400).
#   mim train mmdet configs/mmcast/custom/supervised_student_custom-cpu.py
_base_ = [
    '../_base_/models/mask2former_r18_toy.py',
    './_base_/semi_custom_instance_cpu.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = _base_.num_dataset_classes  # len(classes), custom_dataset.py
model = _base_.head_classes

# D_l only, with ground truth (no MultiBranch)
train_dataloader = dict(_delete_=True, **_base_.supervised_dataloader)

max_iters = 2000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
