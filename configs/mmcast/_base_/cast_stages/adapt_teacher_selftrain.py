# CAST stage 1b, everything but the dataset: theta_T' (stage 1a) pseudo-labels
# D_u offline; the teacher is re-initialised from the ORIGINAL weights
# theta_T^0 (not theta_T') and trained on D_l + pseudo(D_u) with
# lambda_semi = 1 and L_pxl -> theta_T''. adapt_teacher_selftrain_<dataset>.py
# adds the dataset base, the class count, the stage-1a teacher, the
# pseudo-label file and the number of iterations. Semi-supervised stages
# need >= 2 images per GPU (one per branch).
_base_ = [
    '../models/cast_distiller_swin-l.py',
    './pseudo_label_hooks.py',
    './teacher_schedule.py',
    '../cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

# theta_T'': re-initialised from theta_T^0 (133-class classifier skipped,
# see ../models/cast_teacher_mask2former_swin-l.py; tools/cast_pipeline.py
# overrides model.student.init_cfg.checkpoint)
model = dict(
    student=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint={{_base_.pretrained_teacher}})))
