# CAST stage 1a on the toy data with the box-prompted teacher (tiny
# Grounding-DINO + tiny SAM 2 of toy/teacher_gdino-tiny_sam2-tiny_toy.py)
# instead of the Mask2Former one: fine-tune θ_T^0 on the labeled split D_l
# → θ_T'. BoxPromptedTeacher.loss trains the Grounding-DINO part on boxes
# (AdamW, backbone lr ×0.1, BERT frozen); SAM 2 stays frozen, so there is no
# L_pxl (and no temperature hook) in the teacher stages of this variant.
#   python -m mmcast.toy.tiny_teachers --out work_dirs/tiny_teachers
#   mim train mmdet configs/mmcast/cast/cast-adapt-teacher_gdino-tiny_sam2-tiny_1xb4-300it_toy-semi-10p.py
# or, all stages: python tools/cast_pipeline.py toy --teacher gdino-sam2 ...
# This file is also the teacher architecture of stages 1b and 2 (their
# ``model.teacher``).
_base_ = '../toy/teacher_gdino-tiny_sam2-tiny_toy.py'

# θ_T^0: the tiny Grounding-DINO pre-trained on the domain-shifted source
# corpus (toy/teacher_gdino-tiny_sam2-tiny_source-pretrain_toy.py).
pretrained_teacher = ('work-dir://work_dirs/teacher_gdino-tiny_sam2-tiny_'
                      'source-pretrain_toy')
load_from = pretrained_teacher

# D_l: the labeled 10 % split (as
# configs/mmcast/cast/cast-adapt-teacher_mask2former-r34_1xb4-150it_toy-semi-10p.py).
train_dataloader = dict(
    dataset=dict(
        ann_file='annotations/semi/instancesonly_filtered_gtFine_train.1@10.json'))  # noqa: E501

max_iters = 300
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
