# Copyright (c) mmcast contributors. All rights reserved.
"""The pipeline's fixed settings: teachers, custom datasets, ``--iters``
names, metrics. Which config each stage runs is the table of stage configs
(:mod:`~mmcast.apis.pipeline.stage_table`), what each stage is made from the
stage graph (:mod:`~mmcast.apis.pipeline.stage_graph`); the stage lists
below are read from them."""
from mmcast.toy.tiny_sam3 import build_tiny_sam3_assets
from mmcast.toy.tiny_teachers import build_tiny_teacher_assets

# the pipeline's modules import REPO_ROOT from here
from .project_root import REPO_ROOT  # noqa: F401
from .stage_graph import cast_chain, stage_graph
from .stage_table import student_stages, teacher_stages

# --student-init source-pretrained (toy): the students load the backbone of
# an R-18 pre-trained on the source corpus like θ_T^0, cached in this folder
# of the work dir (and this stage key of the table).
STUDENT_FOUNDATION = 'student_foundation'
# custom-cpu without --pretrained-teacher: θ_T^0 is a stand-in, the stage-1a
# config trained from scratch on D_l, in this folder of the work dir.
STANDIN_TEACHER = 'teacher_standin'
# The seed of the stages shared by every seed of a run (θ_T^0's pre-training
# or stand-in, the students' backbone); a seed's own stages get that seed.
SHARED_STAGES_SEED = 0
DEFAULT_TEACHER = 'mask2former'
# toy_foundation: the work-dir folder θ_T^0 of the toy source corpus is
# cached in (its config: the table's toy_foundation row of the teacher);
# tiny_assets: the function that writes the tiny offline files the toy
# teacher reads (tiny BERT and SAM 2; tiny SAM 3 and its vocabulary), or
# None.
TEACHERS = {
    'mask2former':
    dict(toy_foundation='toy_foundation', tiny_assets=None),
    'gdino-sam2':
    dict(
        toy_foundation='toy_foundation_gdino-sam2',
        tiny_assets=build_tiny_teacher_assets),
    'sam3':
    dict(
        toy_foundation='toy_foundation_sam3',
        tiny_assets=build_tiny_sam3_assets),
}
# Config keys MMDetection's train / test scripts set from their command line.
SCRIPT_SET_KEYS = ('work_dir', 'launcher', 'resume')
# The stages whose configs name the teacher (architecture or weights).
TEACHER_STAGES = teacher_stages()
# The stages whose configs are the student's: another student (--student, a
# variant of the table of stage configs) changes them.
STUDENT_STAGES = student_stages()
TEACHER_MARKER = 'pipeline_teacher.json'
METHODS = ('cast', 'gd')
# Stage 2's teacher: θ_T'' of stage 1b (the paper's), θ_T' of stage 1a, or
# both predicting together (TeacherEnsemble, fused per instance); each with
# its name in the results table.
DISTILL_TEACHERS = {
    'selftrained': "θ_T''",
    'adapted': "θ_T'",
    'ensemble': "θ_T' + θ_T''",
    'pretrained': 'θ_T^0',
}
# Your own COCO-format dataset: configs/mmcast/custom/<stage>_<dataset>.py,
# reading configs/mmcast/custom/custom_dataset.py; the environment variables
# that replace its data root and class names (Python literals).
CUSTOM_DATASETS = ('custom', 'custom-cpu')
CUSTOM_TEMPLATE = 'configs/mmcast/custom/custom_dataset.py'
CUSTOM_ROOT_ENV = 'MMCAST_CUSTOM_ROOT'
CUSTOM_CLASSES_ENV = 'MMCAST_CUSTOM_CLASSES'
CUSTOM_PERCENT_ENV = 'MMCAST_CUSTOM_PERCENT'
CUSTOM_SPLIT_SEED_ENV = 'MMCAST_CUSTOM_SPLIT_SEED'
CUSTOM_ENVS = (CUSTOM_ROOT_ENV, CUSTOM_CLASSES_ENV, CUSTOM_PERCENT_ENV,
               CUSTOM_SPLIT_SEED_ENV)
# --iters: the stages whose iterations it sets (pretrain: θ_T^0 or its
# stand-in, and the students' backbone; then CAST's chain), their aliases
# (the stage graph's labels) and, for the former positional form, their
# order.
ITERS_STAGES = ('pretrain', ) + cast_chain()
ITERS_ALIASES = {stage_graph()[key].label: key for key in cast_chain()}
# Config keys left out when deciding whether a stage runs alike: they change
# what is logged, how checkpoints and metric files land on disk, or the
# runner class that logs the batch (whose lr the options fix), not the
# results; and the configs' variables naming a default hand-off checkpoint,
# whose every use the pipeline's options set.
RESULT_NEUTRAL_KEYS = (('default_hooks', 'logger', 'interval'),
                       ('default_hooks', 'checkpoint', 'type'),
                       ('default_hooks', 'metric_output'), ('runner_type', ),
                       ('pretrained_teacher', ), ('adapted_teacher', ),
                       ('distilled_student', ), ('supervised_teacher', ))
# A stage's json log gets at least this many records (progress lines).
PROGRESS_RECORDS = 20
# The datasets whose configs name their split files as tools/split_semi.py
# writes them (--labeled-split switches every stage to another split).
SPLIT_DATASETS = ('cityscapes', 'ade20k', 'coco')
# The metric each dataset's results table reads first (stage.METRICS): the
# papers' Cityscapes numbers are cityscapesscripts' mask AP / AP50
# (CityScapesMetric), the COCO-style ones follow in a second column; every
# other dataset (toy included: its research log is COCO-style) reads
# pycocotools' (CocoMetric).
PRIMARY_METRIC = {'cityscapes': 'cityscapes'}
DEFAULT_METRIC = 'coco'
# Bytes per weight in a training checkpoint: the weights and AdamW's two
# moments, float32.
CHECKPOINT_BYTES_PER_WEIGHT = 12
# The exit status when another pipeline holds the work dir (sysexits'
# EX_TEMPFAIL: try again later).
WORK_DIR_BUSY = 75
