# The box-prompted VFM teacher at toy scale: a tiny Grounding-DINO (mmdet's
# GroundingDINO class, ResNet-18 at 1/8 width, 1 encoder/decoder layer, a
# 1-layer 32-d BERT) prompted with the 8 class names, and a tiny SAM 2
# (sam2.1_hiera_t.yaml shrunk by hydra overrides: 32-d Hiera, 128-d neck and
# mask decoder, 128-px input) turning each box into a mask. Weights are
# random until the source pre-training
# (teacher_gdino-tiny_sam2-tiny_source-pretrain_toy.py); the code path is the
# real one (BoxPromptedTeacher, mmdet GroundingDINO + BertModel, sam2
# SAM2Base).
# Drop-in replacement of the Mask2Former teacher of the toy pipeline.
#
# Write the tiny BERT folder and checkpoints first (idempotent, ~2 s):
#   python -m mmcast.toy.tiny_teachers --out work_dirs/tiny_teachers
# then use work_dirs/tiny_teachers/teacher_gdino-tiny_sam2-tiny.pth as the
# teacher checkpoint, e.g.
#   mim test mmdet configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_toy.py \
#       --checkpoint work_dirs/tiny_teachers/teacher_gdino-tiny_sam2-tiny.pth
#   python tools/pseudo_label.py configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_toy.py \
#       work_dirs/tiny_teachers/teacher_gdino-tiny_sam2-tiny.pth --unlabeled-ann ...
# Training it (`mim train`, stage-1 style) trains the Grounding-DINO part
# with the paper's recipe (AdamW, backbone lr x0.1, BERT frozen); SAM 2 stays
# frozen:
#   mim train mmdet configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_toy.py \
#       --cfg-options load_from=work_dirs/tiny_teachers/teacher_gdino-tiny_sam2-tiny.pth
# The tiny BERT folder and SAM 2 checkpoint are read from $MMCAST_TINY_TEACHERS
# (default work_dirs/tiny_teachers). The model parts live in
# ../_base_/models/box_prompted_teacher_toy_gdino-sam2.py (kept equal to
# mmcast.toy.tiny_teachers.tiny_box_prompted_teacher_cfg by the tests).
_base_ = [
    '../_base_/models/box_prompted_teacher_toy_gdino-sam2.py',
    '../_base_/datasets/toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

class_names = ('person', 'rider', 'car', 'truck', 'bus', 'train',
               'motorcycle', 'bicycle')

model = dict(
    type='BoxPromptedTeacher',
    detector={{_base_.toy_gdino_detector}},
    sam2={{_base_.toy_sam2}},
    classes=class_names,
    score_thr={{_base_.toy_gdino_score_thr}},
    max_per_img={{_base_.toy_gdino_max_per_img}})

optim_wrapper = {{_base_.toy_gdino_optim_wrapper}}
