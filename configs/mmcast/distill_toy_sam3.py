# CAST stage 2 on the toy data with the concept-prompted teacher: as
# distill_toy.py (R-18 CAST Mask2Former student, λ_semi = 1, λ_pxl = 0.1,
# T annealed 0.3 → 0.07), but the frozen teacher θ_T'' that pseudo-labels
# D_u is the tiny SAM 3 of stage 1a (adapt_teacher_toy_sam3.py) with the
# weights of stage 1b.
#   mim train mmdet configs/mmcast/distill_toy_sam3.py
# Stage 3 and the labels-only baseline are student-only: finetune_toy.py and
# supervised_student_toy.py serve every teacher.
_base_ = './distill_toy.py'

pseudo_label_file = 'work_dirs/distill_toy_sam3/pseudo_labels.json'

model = dict(
    # θ_T'': the teacher architecture of stage 1a, weights of stage 1b.
    teacher='configs/mmcast/adapt_teacher_toy_sam3.py',
    teacher_checkpoint=('work_dirs/adapt_teacher_selftrain_toy_sam3/'
                        'iter_500.pth'))

train_dataloader = dict(
    dataset=dict(datasets=[
        {{_base_.labeled_dataset}},
        dict(
            type='PseudoLabeledDataset',
            data_root='',
            ann_file=pseudo_label_file,
            unlabeled_ann_file={{_base_.pseudo_labeled_dataset.unlabeled_ann_file}},  # noqa
            metainfo=dict(classes={{_base_.classes}}),
            data_prefix={{_base_.pseudo_labeled_dataset.data_prefix}},
            pipeline={{_base_.unsup_pipeline}}),
    ]))

custom_hooks = [
    dict(
        type='PseudoLabelHook',
        out_file=pseudo_label_file,
        unlabeled_dataset={{_base_.unlabeled_dataset}},
        quality_dataset={{_base_.labeled_quality_dataset}},
        filter_cfg=dict(score_thr=0.3, max_per_image=100, mask_thr=0.5),
        batch_size=4),
    dict(type='ContrastTemperatureHook', start=0.3, end=0.07),
]
