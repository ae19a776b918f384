# CAST teacher–student wrapper with the toy DINOv3 DPT student and its
# contrastive branch (cast_student_dinov3-tiny_dpt_toy.py). Stage configs set
# the frozen teacher (a config path and a checkpoint).
_base_ = './cast_student_dinov3-tiny_dpt_toy.py'

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
