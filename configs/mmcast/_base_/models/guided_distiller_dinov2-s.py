# Guided Distillation wrapper around CAST's compact student (DINOv2-S + DPT +
# Mask2Former, 52M): the same model is the student (pre-trained ViT, fresh
# heads) and the teacher (the labels-only model, later the student's EMA),
# since GD's switch copies the student into the teacher. GD's settings:
# guided_distiller.py. Stage configs set the number of classes and the
# teacher's checkpoint.
_base_ = ['./student_dinov2-s_dpt-52m.py', './guided_distiller.py']

model = dict(
    _delete_=True,
    student=_base_.model,
    teacher=_base_.model,
    data_preprocessor=dict(
        type='MultiBranchDataPreprocessor',
        data_preprocessor=_base_.model.data_preprocessor),
    **_base_.guided_distiller)
