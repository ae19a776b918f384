# CAST teacher–student wrapper whose student is the toy R-34 teacher
# architecture itself: stage 1b, where the teacher self-trains on its own
# adapted pseudo-labels.
_base_ = './cast_mask2former_r34_toy_teacher.py'

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
