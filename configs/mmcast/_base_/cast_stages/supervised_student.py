# Labels-only baseline of CAST, everything but the dataset: the same
# DINOv2-S + DPT + Mask2Former student (no L_pxl, no teacher) trained on the
# labeled split D_l alone. supervised_student_<dataset>.py adds the dataset
# and its student schedule, the class count, the labeled-only loader and the
# number of iterations (as many as stages 2 + 3).
_base_ = [
    '../models/student_dinov2-s_dpt-52m.py',
    '../cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)
