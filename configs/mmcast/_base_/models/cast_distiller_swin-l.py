# CAST teacher-student wrapper whose student is the Mask2Former Swin-L teacher
# architecture itself (cast_teacher_mask2former_swin-l.py): stage 1b, where
# the teacher, re-initialised from theta_T^0, self-trains on D_l and the
# pseudo-labels of its stage-1a self. Stage configs set the student's
# init_cfg (theta_T^0), the frozen teacher (stage-1a config and checkpoint)
# and the number of classes.
_base_ = './cast_teacher_mask2former_swin-l.py'

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
