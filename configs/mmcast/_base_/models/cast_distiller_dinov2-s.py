# CAST teacher-student wrapper (stage 2) with the paper's student,
# cast_student_dinov2-s_dpt.py (DINOv2-S + DPT + Mask2Former decoder, L_pxl
# on). Stage configs set the frozen teacher (a config path and a checkpoint)
# and the number of classes. Checkpoints hold only ``student.*``.
_base_ = './cast_student_dinov2-s_dpt.py'

model = dict(
    _delete_=True,
    type='CASTDistiller',
    student={{_base_.model}},
    teacher=None,
    teacher_checkpoint=None,
    semi_train_cfg=dict(
        sup_weight=1.0, unsup_weight=1.0, pseudo_label_mode='offline'),
    data_preprocessor=dict(
        type='MultiBranchDataPreprocessor',
        data_preprocessor={{_base_.data_preprocessor}}))
