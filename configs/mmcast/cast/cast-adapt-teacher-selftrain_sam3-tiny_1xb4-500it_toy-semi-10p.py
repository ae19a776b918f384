# CAST stage 1b on the toy data with the concept-prompted teacher: θ_T' (stage
# 1a, cast-adapt-teacher_sam3-tiny_1xb4-300it_toy-semi-10p.py) pseudo-labels
# D_u once (offline); the teacher is re-initialised from the ORIGINAL weights
# θ_T^0 and its trainable parts (decoder, scoring, segmentation head) trained
# on D_l ∪ pseudo(D_u), λ_semi = 1 → θ_T'' (no L_pxl: its pixel features come
# from the frozen encoders). Data, sampler, pseudo-label filter and quality
# measurement on D_l are those of
# cast-adapt-teacher-selftrain_mask2former-r34_1xb4-300it_toy-semi-10p.py;
# the length is its own.
#   mim train mmdet configs/mmcast/cast/cast-adapt-teacher-selftrain_sam3-tiny_1xb4-500it_toy-semi-10p.py
_base_ = [
    './cast-adapt-teacher-selftrain_mask2former-r34_1xb4-300it_toy-semi-10p.py',  # noqa: E501
    '../_base_/models/concept_prompted_teacher_toy_sam3.py',
]

pretrained_teacher = \
    'work-dir://work_dirs/teacher_sam3-tiny_source-pretrain_toy'
pseudo_label_file = ('work_dirs/cast-adapt-teacher-selftrain_sam3-tiny_1xb4-500it_toy-semi-10p/'  # noqa: E501
                     'pseudo_labels.json')

model = dict(
    _delete_=True,
    type='CASTDistiller',
    # θ_T'': the concept-prompted teacher re-initialised from θ_T^0.
    student=dict(
        type='ConceptPromptedTeacher',
        sam3={{_base_.toy_sam3}},
        classes={{_base_.classes}},
        class_prompts={{_base_.toy_sam3_class_prompts}},
        score_thr={{_base_.toy_sam3_score_thr}},
        nms_iou_thr={{_base_.toy_sam3_nms_iou_thr}},
        max_per_img={{_base_.toy_sam3_max_per_img}},
        data_preprocessor={{_base_.toy_sam3_data_preprocessor}},
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_teacher)),
    # θ_T' (stage 1a) labels D_u.
    teacher='configs/mmcast/cast/cast-adapt-teacher_sam3-tiny_1xb4-300it_toy-semi-10p.py',  # noqa: E501
    teacher_checkpoint='work-dir://work_dirs/cast-adapt-teacher_sam3-tiny_1xb4-300it_toy-semi-10p',  # noqa: E501
    semi_train_cfg=dict(
        sup_weight=1.0, unsup_weight=1.0, pseudo_label_mode='offline'),
    data_preprocessor=dict(
        type='MultiBranchDataPreprocessor',
        data_preprocessor={{_base_.toy_sam3_data_preprocessor}}))

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

max_iters = 500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)

# The optimiser of stage 1a (encoders frozen).
optim_wrapper = {{_base_.toy_sam3_optim_wrapper}}
# No ContrastTemperatureHook: the concept-prompted teacher has no L_pxl.
custom_hooks = [
    dict(
        type='PseudoLabelHook',
        out_file=pseudo_label_file,
        unlabeled_dataset={{_base_.unlabeled_dataset}},
        quality_dataset={{_base_.labeled_quality_dataset}},
        filter_cfg=dict(score_thr=0.3, max_per_image=100, mask_thr=0.5),
        batch_size=4),
]
