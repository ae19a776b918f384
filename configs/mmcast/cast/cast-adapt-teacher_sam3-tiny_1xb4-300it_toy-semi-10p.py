# CAST stage 1a on the toy data with the concept-prompted teacher (a tiny
# SAM 3 prompted with the class names, toy/teacher_sam3-tiny_toy.py) instead
# of the Mask2Former one: fine-tune θ_T^0 on the labeled split D_l → θ_T'.
# ConceptPromptedTeacher.loss trains SAM 3's DETR-style decoder, dot-product
# scoring and segmentation head (AdamW); the vision, text, geometry and
# fusion encoders stay frozen, so there is no L_pxl (and no temperature hook)
# in the teacher stages of this variant.
#   python -m mmcast.toy.tiny_sam3 --out work_dirs/tiny_teachers
#   mim train mmdet configs/mmcast/cast/cast-adapt-teacher_sam3-tiny_1xb4-300it_toy-semi-10p.py
# or, all stages: python tools/cast_pipeline.py toy --teacher sam3 ...
# This file is also the teacher architecture of stages 1b and 2 (their
# ``model.teacher``).
_base_ = '../toy/teacher_sam3-tiny_toy.py'

# θ_T^0: the tiny SAM 3 pre-trained on the domain-shifted source corpus
# (toy/teacher_sam3-tiny_source-pretrain_toy.py).
pretrained_teacher = \
    'work-dir://work_dirs/teacher_sam3-tiny_source-pretrain_toy'
load_from = pretrained_teacher

# D_l: the labeled 10 % split (as
# configs/mmcast/cast/cast-adapt-teacher_mask2former-r34_1xb4-150it_toy-semi-10p.py).
train_dataloader = dict(
    dataset=dict(
        ann_file='annotations/semi/instancesonly_filtered_gtFine_train.1@10.json'))  # noqa: E501

max_iters = 300
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(end=max_iters)
