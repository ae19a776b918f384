# Guided Distillation wrapper around the toy EoMT student
# (eomt_dinov3-tiny_toy.py): the same model is the student (fresh) and the
# teacher (the labels-only EoMT, later the student's EMA), since GD's switch
# copies the student into the teacher. GD's settings: guided_distiller.py.
# Stage configs set the teacher's checkpoint.
_base_ = ['./eomt_dinov3-tiny_toy.py', './guided_distiller.py']

model = dict(
    _delete_=True,
    student=_base_.model,
    teacher=_base_.model,
    data_preprocessor=dict(
        type='MultiBranchDataPreprocessor',
        data_preprocessor=_base_.model.data_preprocessor),
    **_base_.guided_distiller)
