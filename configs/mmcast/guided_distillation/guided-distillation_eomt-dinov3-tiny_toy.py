# Guided Distillation on the toy data with the toy EoMT student
# (../_base_/models/guided_distiller_eomt-dinov3-tiny_toy.py), beside CAST
# with the same student (../toy/cast-distill_eomt-dinov3-tiny_1xb4-1600it_toy-semi-10p.py
# and its stage 3): everything of guided-distillation_r18_toy.py (1:1
# labeled : unlabeled, burn-in 1500 of 2000 iterations, EMA 0.999, the
# labeled side drawn uniformly) but the student.
# Phase 1, the supervised teacher, IS the EoMT labels-only baseline
# (configs/mmcast/toy/supervised_eomt-dinov3-tiny_1xb4-2000it_toy-10p.py).
# The student's masked attention anneals as the baseline's: block j over
# [500 (j + 1), 500 (j + 2)), so it trains from iteration 1500 on, as it
# predicts, with plain attention.
#   mim train mmdet configs/mmcast/toy/supervised_eomt-dinov3-tiny_1xb4-2000it_toy-10p.py
#   mim train mmdet configs/mmcast/guided_distillation/guided-distillation_eomt-dinov3-tiny_toy.py
# or both, per seed, beside CAST:
#   python tools/cast_pipeline.py toy --student eomt-dinov3-tiny --methods cast gd
_base_ = [
    '../_base_/models/guided_distiller_eomt-dinov3-tiny_toy.py',
    '../_base_/datasets/semi_toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

model = dict(
    teacher_checkpoint=('work-dir://work_dirs/'
                        'supervised_eomt-dinov3-tiny_1xb4-2000it_toy-10p'))

train_dataloader = dict(
    sampler=dict(source_ratio=[1, 1]),
    dataset=dict(datasets=[
        {{_base_.labeled_dataset}},
        {{_base_.unlabeled_pool_dataset}},
    ]))

max_iters = 2000
burn_in_iters = 1500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
custom_hooks = [
    dict(type='GuidedTeacherHook', burn_in_iters=burn_in_iters, decay=0.999),
    dict(
        type='MaskAnnealingHook',
        start_iters=[500, 1000],
        end_iters=[1000, 1500],
        power=0.9),
]
