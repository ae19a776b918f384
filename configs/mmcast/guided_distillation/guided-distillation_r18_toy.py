# Guided Distillation on the toy data, beside CAST with the same R-18 student,
# labeled split, batch mix (1 labeled : 3 unlabeled of 4) and schedule length
# (2000 iterations = CAST's stages 2 + 3 = the labels-only baseline).
# Phase 1, the supervised teacher, IS the labels-only baseline
# (configs/mmcast/supervised_student_toy.py): GD's teacher and student share
# an architecture. Phases 2-4 here: guided burn-in (1000 iterations, frozen
# teacher labels every unlabeled batch), switch, EMA teacher (decay 0.9996).
#   mim train mmdet configs/mmcast/supervised_student_toy.py
#   mim train mmdet configs/mmcast/guided_distillation/guided-distillation_r18_toy.py
# or both, per seed, beside CAST: python tools/cast_pipeline.py toy --methods gd
_base_ = [
    '../_base_/models/guided_distiller_r18_toy.py',
    '../_base_/datasets/semi_toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

model = dict(
    teacher_checkpoint='work_dirs/supervised_student_toy/iter_2000.pth')

train_dataloader = dict(
    sampler=dict(source_ratio=[1, 3]),
    dataset=dict(datasets=[
        {{_base_.labeled_dataset}},
        {{_base_.unlabeled_pool_dataset}},
    ]))

max_iters = 2000
burn_in_iters = 1000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
custom_hooks = [
    dict(type='GuidedTeacherHook', burn_in_iters=burn_in_iters, decay=0.9996)
]
