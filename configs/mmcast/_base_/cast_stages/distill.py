# CAST stage 2, everything but the dataset: the adapted teacher theta_T'' is
# frozen and pseudo-labels D_u once (offline, before training); the
# DINOv2-S + DPT student trains on
# J(theta_S; D_l, D_u; lambda_semi = 1, lambda_pxl = 0.1), T annealed
# 0.3 -> 0.07. distill_<dataset>.py adds the dataset and its student
# schedule, the class count, the teacher and the pseudo-label file.
# Semi-supervised stages need >= 2 images per GPU (one per branch).
_base_ = [
    '../models/cast_distiller_dinov2-s.py',
    './pseudo_label_hooks.py',
    '../cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

model = dict(semi_train_cfg=dict(unsup_weight=1.0))
