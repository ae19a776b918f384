# CAST stage 2 on the toy data with the concept-prompted teacher: as
# cast-distill_mask2former-r18_1xb4-1600it_toy-semi-10p.py (R-18 CAST
# Mask2Former student, λ_semi = 1, λ_pxl = 0.1, T annealed 0.3 → 0.07), but the
# frozen teacher θ_T'' that pseudo-labels D_u is the tiny SAM 3 of stage 1a
# (cast-adapt-teacher_sam3-tiny_1xb4-300it_toy-semi-10p.py) with the weights of
# stage 1b.
#   mim train mmdet configs/mmcast/cast/cast-distill_mask2former-r18_sam3-tiny-teacher_1xb4-1600it_toy-semi-10p.py
# Stage 3 and the labels-only baseline are student-only:
# cast-finetune_mask2former-r18_1xb4-200it_toy-semi-10p.py and
# supervised_mask2former-r18_1xb4-1800it_toy-10p.py serve every teacher.
_base_ = './cast-distill_mask2former-r18_1xb4-1600it_toy-semi-10p.py'

pseudo_label_file = 'work_dirs/cast-distill_mask2former-r18_sam3-tiny-teacher_1xb4-1600it_toy-semi-10p/pseudo_labels.json'  # noqa: E501

model = dict(
    # θ_T'': the teacher architecture of stage 1a, weights of stage 1b.
    teacher='configs/mmcast/cast/cast-adapt-teacher_sam3-tiny_1xb4-300it_toy-semi-10p.py',  # noqa: E501
    teacher_checkpoint=('work-dir://work_dirs/'
                        'cast-adapt-teacher-selftrain_sam3-tiny_1xb4-500it_toy-semi-10p'))  # noqa: E501

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
