# The concept-prompted VFM teacher at toy scale: a tiny SAM 3 (the sam3
# package's Sam3Image at 112 px, ViT 32-d x 2 blocks, d_model 32, 20 queries)
# prompted with the 8 class names ('rider' also as 'cyclist', 'motorcycle'
# also as 'motorbike'). Weights are random (scoring calibrated so that
# instances clear the 0.3 threshold); the code path is the real one
# (ConceptPromptedTeacher, sam3 Sam3Image). Drop-in replacement of the
# Mask2Former teacher of the toy pipeline.
#
# Write the tiny BPE vocabulary and checkpoints first (idempotent, ~3 s):
#   python -m mmcast.toy.tiny_sam3 --out work_dirs/tiny_teachers
# then use work_dirs/tiny_teachers/teacher_sam3-tiny.pth as the teacher
# checkpoint, e.g.
#   mim test mmdet configs/mmcast/toy/teacher_sam3-tiny_toy.py \
#       --checkpoint work_dirs/tiny_teachers/teacher_sam3-tiny.pth
# Training it (`mim train`, stage-1 style) trains the DETR-style decoder, the
# dot-product scoring and the segmentation head; the vision, text, geometry
# and fusion encoders stay frozen:
#   mim train mmdet configs/mmcast/toy/teacher_sam3-tiny_toy.py \
#       --cfg-options load_from=work_dirs/tiny_teachers/teacher_sam3-tiny.pth
# The tiny files are read from $MMCAST_TINY_TEACHERS (default
# work_dirs/tiny_teachers). The model parts live in
# ../_base_/models/concept_prompted_teacher_toy_sam3.py (kept equal to
# mmcast.toy.tiny_sam3.tiny_concept_prompted_teacher_cfg by the tests).
_base_ = [
    '../_base_/models/concept_prompted_teacher_toy_sam3.py',
    '../_base_/datasets/toy_cityscapes_instance.py',
    '../_base_/schedules/toy_iter.py',
    '../_base_/toy_runtime.py',
]
custom_imports = dict(imports=['mmcast'], allow_failed_imports=False)

class_names = ('person', 'rider', 'car', 'truck', 'bus', 'train',
               'motorcycle', 'bicycle')

model = dict(
    type='ConceptPromptedTeacher',
    sam3={{_base_.toy_sam3}},
    classes=class_names,
    class_prompts={{_base_.toy_sam3_class_prompts}},
    score_thr={{_base_.toy_sam3_score_thr}},
    nms_iou_thr={{_base_.toy_sam3_nms_iou_thr}},
    max_per_img={{_base_.toy_sam3_max_per_img}},
    data_preprocessor={{_base_.toy_sam3_data_preprocessor}})

optim_wrapper = {{_base_.toy_sam3_optim_wrapper}}
