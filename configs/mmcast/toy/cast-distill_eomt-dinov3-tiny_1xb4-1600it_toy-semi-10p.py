# CAST stage 2 on the toy data with the toy EoMT student
# (_base_/models/cast_distiller_eomt-dinov3-tiny_toy.py): the data, schedule,
# teacher and offline pseudo-labels of
# ../cast/cast-distill_mask2former-r18_1xb4-1600it_toy-semi-10p.py (the
# adapted teacher θ_T'' is frozen and pseudo-labels D_u once; 1 labeled : 3
# pseudo-labeled images per batch of 4), J(θ_S; D_l, D_u; λ_semi = 1,
# λ_pxl = 0.1) with L_pxl on the ViT's final patch tokens, T annealed
# 0.3 → 0.07. The masked attention of block j anneals over iterations
# [400 (j + 1), 400 (j + 2)) (the toy EoMT's schedule scaled to 1600
# iterations).
#   mim train mmdet configs/mmcast/toy/cast-distill_eomt-dinov3-tiny_1xb4-1600it_toy-semi-10p.py
_base_ = [
    '../_base_/models/cast_distiller_eomt-dinov3-tiny_toy.py',
    '../_base_/datasets/semi_toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

pseudo_label_file = 'work_dirs/cast-distill_eomt-dinov3-tiny_1xb4-1600it_toy-semi-10p/pseudo_labels.json'  # noqa: E501

model = dict(
    # θ_T'': the teacher architecture of stage 1a, weights of stage 1b.
    teacher='configs/mmcast/cast/cast-adapt-teacher_mask2former-r34_1xb4-150it_toy-semi-10p.py',  # noqa: E501
    teacher_checkpoint='work-dir://work_dirs/cast-adapt-teacher-selftrain_mask2former-r34_1xb4-300it_toy-semi-10p',  # noqa: E501
    semi_train_cfg=dict(unsup_weight=1.0))

train_dataloader = dict(
    sampler=dict(source_ratio=[1, 3]),
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

max_iters = 1600
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
# θ_T'' labels D_u from score 0.6, as for the R-18 student.
custom_hooks = [
    dict(
        type='PseudoLabelHook',
        out_file=pseudo_label_file,
        unlabeled_dataset={{_base_.unlabeled_dataset}},
        quality_dataset={{_base_.labeled_quality_dataset}},
        filter_cfg=dict(score_thr=0.6, max_per_image=100, mask_thr=0.5),
        batch_size=4),
    dict(type='ContrastTemperatureHook', start=0.3, end=0.07),
    dict(
        type='MaskAnnealingHook',
        start_iters=[400, 800],
        end_iters=[800, 1200],
        power=0.9),
]
