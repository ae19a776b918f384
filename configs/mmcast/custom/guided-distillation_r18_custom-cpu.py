# Guided Distillation on your COCO-format dataset (custom_dataset.py),
# CPU-sized, beside CAST with the same R-18 student, labeled split, batch mix
# (1 labeled : 3 unlabeled of 4) and length (2000 iterations = CAST's stages
# 2 + 3 = the labels-only baseline). Phase 1, the supervised teacher, IS the
# labels-only baseline (supervised_student_custom-cpu.py). Phases 2-4 here:
# guided burn-in (1000 iterations), switch, EMA teacher (decay 0.9996).
# Unlabeled pool: all train images. CPU-sized like the toy config: the
# labeled side is drawn uniformly, without GD's class-balanced repeat
# sampling (guided-distillation_dinov2-s_custom.py has it).
#   mim train mmdet configs/mmcast/custom/supervised_student_custom-cpu.py
#   mim train mmdet configs/mmcast/custom/guided-distillation_r18_custom-cpu.py
# or beside CAST, per seed: python tools/cast_pipeline.py custom-cpu --methods cast gd
_base_ = [
    '../_base_/models/guided_distiller_r18_toy.py',
    './_base_/semi_custom_instance_cpu.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

num_classes = _base_.num_dataset_classes  # len(classes), custom_dataset.py
model = dict(
    student=_base_.head_classes,
    teacher=_base_.head_classes,
    teacher_checkpoint='work-dir://work_dirs/supervised_student_custom-cpu')

train_dataloader = dict(
    sampler=dict(source_ratio=[1, 3]),
    dataset=dict(datasets=[
        _base_.labeled_dataset,
        _base_.unlabeled_pool_dataset,
    ]))

max_iters = 2000
burn_in_iters = 1000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
custom_hooks = [
    dict(type='GuidedTeacherHook', burn_in_iters=burn_in_iters, decay=0.9996)
]
