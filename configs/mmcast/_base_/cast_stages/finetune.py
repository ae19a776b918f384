# CAST stage 3, everything but the dataset: start from the stage-2 student and
# train on the labeled split D_l only, with L_sup only
# (lambda_semi = lambda_pxl = 0), to remove residual pseudo-label bias.
# finetune_<dataset>.py adds the dataset and its student schedule, the class
# count, the labeled-only loader, the stage-2 checkpoint and the number of
# iterations.
_base_ = [
    '../models/cast_student_dinov2-s_dpt.py',
    '../cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

model = dict(
    # all weights come from stage 2: no DINOv2 download
    backbone=dict(init_cfg=None),
    panoptic_head=dict(loss_pixel_contrast=None),
    # The student weights of a CASTDistiller checkpoint live under "student."
    # (the stage config sets the checkpoint; tools/cast_pipeline.py overrides
    # model.init_cfg.checkpoint). _delete_: the base's init_cfg is None.
    init_cfg=dict(_delete_=True, type='Pretrained', prefix='student.'))
