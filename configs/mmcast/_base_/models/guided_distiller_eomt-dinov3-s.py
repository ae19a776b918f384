# Guided Distillation wrapper around the real-size EoMT student
# (eomt_dinov3-s.py): the same model is the student (the converted DINOv3-S
# ViT, fresh queries and heads) and the teacher (the labels-only EoMT, later
# the student's EMA), since GD's switch copies the student into the teacher.
# GD's rule reads the teacher's final prediction (EoMT's only one at
# inference, without masked attention). Stage configs set the number of
# classes and the teacher's checkpoint.
_base_ = './eomt_dinov3-s.py'

model = dict(
    _delete_=True,
    type='GuidedDistiller',
    student=_base_.model,
    teacher=_base_.model,
    teacher_checkpoint=None,
    # unlabeled branch x2.0; GD's rule on the teacher's final prediction
    semi_train_cfg=dict(
        sup_weight=1.0,
        unsup_weight=2.0,
        pseudo_label_rule=dict(score_thr=0.7, min_mask_area=5.0,
                               mask_thr=0.5)),
    # mim test evaluates the student; predict_on='teacher' the EMA teacher
    semi_test_cfg=dict(predict_on='student'),
    # the student's strong view of unlabeled images: Guided Distillation's
    # (ColorJitter 0.4/0.4/0.4/0.1 p = 0.8, grayscale p = 0.2, blur sigma
    # 0.1-2 p = 0.5)
    strong_view=dict(
        type='PhotometricStrongView',
        jitter_prob=0.8,
        gray_prob=0.2,
        blur_prob=0.5),
    data_preprocessor=dict(
        type='MultiBranchDataPreprocessor',
        data_preprocessor=_base_.model.data_preprocessor))
