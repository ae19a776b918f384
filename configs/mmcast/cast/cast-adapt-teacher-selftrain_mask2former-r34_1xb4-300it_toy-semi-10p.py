# CAST stage 1b on the toy data: θ_T' pseudo-labels D_u; the teacher is
# re-initialised from the ORIGINAL weights θ_T^0 and trained on
# D_l ∪ pseudo(D_u) with λ_semi = 1 and L_pxl → θ_T''.
#   mim train mmdet configs/mmcast/cast/cast-adapt-teacher-selftrain_mask2former-r34_1xb4-300it_toy-semi-10p.py
_base_ = [
    '../_base_/models/cast_distiller_r34_toy.py',
    '../_base_/datasets/semi_toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

pretrained_teacher = 'work-dir://work_dirs/mask2former_r34_source-pretrain_toy'  # noqa: E501
pseudo_label_file = 'work_dirs/cast-adapt-teacher-selftrain_mask2former-r34_1xb4-300it_toy-semi-10p/pseudo_labels.json'  # noqa: E501

model = dict(
    # θ_T'': re-initialised from θ_T^0, not from θ_T'.
    student=dict(
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_teacher)),
    # θ_T' (stage 1a) labels D_u.
    teacher='configs/mmcast/cast/cast-adapt-teacher_mask2former-r34_1xb4-150it_toy-semi-10p.py',  # noqa: E501
    teacher_checkpoint='work-dir://work_dirs/cast-adapt-teacher_mask2former-r34_1xb4-150it_toy-semi-10p')  # noqa: E501

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

max_iters = 300
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
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
