# CAST stage 1a, everything but the dataset: fine-tune the pre-trained
# teacher theta_T^0 (Mask2Former Swin-L, MMDetection's COCO-panoptic zoo
# weights) on the labeled split D_l with L_sup + lambda_pxl * L_pxl
# -> theta_T'. adapt_teacher_<dataset>.py adds the dataset base, the class
# count, the labeled-only loader and the number of iterations.
# The zoo checkpoint's 133-class classifier does not fit the head: MMEngine
# skips it (size-mismatch warning) and it starts from random init; see
# ../models/cast_teacher_mask2former_swin-l.py. The stage's model is also the
# teacher architecture of stages 1b and 2 (model.teacher).
_base_ = [
    '../models/cast_teacher_mask2former_swin-l.py',
    './teacher_schedule.py',
    '../cast_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

# theta_T^0 (tools/cast_pipeline.py overrides load_from)
load_from = {{_base_.pretrained_teacher}}

custom_hooks = [dict(type='ContrastTemperatureHook', start=0.3, end=0.07)]
