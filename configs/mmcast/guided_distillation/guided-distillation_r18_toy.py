# Guided Distillation on the toy data, beside CAST with the same R-18 student,
# labeled split and schedule length (1800 iterations = CAST's stages 2 + 3 =
# the labels-only baseline).
# Phase 1, the supervised teacher, IS the labels-only baseline
# (configs/mmcast/cast/supervised_mask2former-r18_1xb4-1800it_toy-10p.py):
# GD's teacher and student share an architecture. Phases 2-4 here: guided
# burn-in (1350 iterations, frozen teacher labels every unlabeled batch),
# switch, EMA teacher.
#   mim train mmdet configs/mmcast/cast/supervised_mask2former-r18_1xb4-1800it_toy-10p.py
#   mim train mmdet configs/mmcast/guided_distillation/guided-distillation_r18_toy.py
# or both, per seed, beside CAST: python tools/cast_pipeline.py toy --methods gd
# Toy schedule, measured with the former full-width R-18 student at 96x192,
# 2000 iterations (seeds 0 / 1, student mask AP / AP50; labels-only
# 36.2 / 59.5, 35.0 / 60.1), burn-in at the same share of the schedule here:
#   1 labeled : 3 unlabeled, burn-in 1000, EMA 0.9996  34.2 / 60.5, 34.1 / 57.8
#   1:1, burn-in 1000, EMA 0.999                        35.0 / 61.4 (seed 0)
#   1:1, burn-in 1500, EMA 0.999 (this config's)        35.5 / 61.5, 36.2 / 62.7
# GD's own 1:1 mix; 0.999 (a 1000-iteration horizon) instead of the paper's
# 0.9996, which is sized for a 368k-iteration schedule and barely moves the
# teacher within 500 iterations; the switch late, when the student has caught
# up with the supervised teacher. The real-size configs keep the paper's
# values.
# Unlike the real-size configs, the labeled side is drawn uniformly, without
# GD's class-balanced repeat sampling (threshold 10): the numbers above were
# measured so. With it, the 20 labeled images of the toy split would be
# listed 5 to 9 times each (bus / train images about 1.7x as often as the
# others), a different labeled draw that these numbers do not cover.
_base_ = [
    '../_base_/models/guided_distiller_r18_toy.py',
    '../_base_/datasets/semi_toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

model = dict(
    teacher_checkpoint=('work-dir://work_dirs/'
                        'supervised_mask2former-r18_1xb4-1800it_toy-10p'))

train_dataloader = dict(
    sampler=dict(source_ratio=[1, 1]),
    dataset=dict(datasets=[
        {{_base_.labeled_dataset}},
        {{_base_.unlabeled_pool_dataset}},
    ]))

max_iters = 1800
burn_in_iters = 1350
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
custom_hooks = [
    dict(type='GuidedTeacherHook', burn_in_iters=burn_in_iters, decay=0.999)
]
