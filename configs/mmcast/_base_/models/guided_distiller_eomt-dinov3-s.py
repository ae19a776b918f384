# Guided Distillation wrapper around the real-size EoMT student
# (eomt_dinov3-s.py): the same model is the student (the converted DINOv3-S
# ViT, fresh queries and heads) and the teacher (the labels-only EoMT, later
# the student's EMA), since GD's switch copies the student into the teacher.
# GD's rule reads the teacher's final prediction (EoMT's only one at inference,
# without masked attention). GD's settings: guided_distiller.py. Stage configs
# set the number of classes and the teacher's checkpoint.
_base_ = ['./eomt_dinov3-s.py', './guided_distiller.py']

model = dict(
    _delete_=True,
    student=_base_.model,
    teacher=_base_.model,
    data_preprocessor=dict(
        type='MultiBranchDataPreprocessor',
        data_preprocessor=_base_.model.data_preprocessor),
    **_base_.guided_distiller)
