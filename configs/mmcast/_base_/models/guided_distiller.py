# Guided Distillation's wrapper settings, the same whatever the student
# (Berrada et al., 2024): the GuidedDistiller's type, loss weights, GD's
# pseudo-label rule, what mim test evaluates and the student's strong view.
# A wrapper base (guided_distiller_<student>.py) inherits its student's
# model and these, and sets the student, the teacher (the same model: GD's
# switch copies the student into the teacher) and the data preprocessor.
guided_distiller = dict(
    type='GuidedDistiller',
    teacher_checkpoint=None,
    # unlabeled branch x2.0; GD's rule on the teacher's final prediction
    # (a Mask2Former's last decoder layer, an EoMT's only one at inference)
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
        blur_prob=0.5))
