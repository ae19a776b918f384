# Copyright (c) mmcast contributors. All rights reserved.
"""Run the three CAST stages end to end for a dataset, resumably.

Stage 1a (adapt the teacher on D_l) → pseudo-labels → stage 1b (re-initialise
the teacher, self-train on D_l ∪ pseudo(D_u)) → pseudo-labels → stage 2
(distil into the student) → stage 3 (fine-tune the student on D_l), plus the
labels-only student baseline with as many iterations as stages 2 + 3. Each
stage is MMDetection's own ``tools/train.py`` of
``configs/mmcast/<stage>_<dataset>.py``, the command ``mim train mmdet`` runs
(or ``torchrun`` on one or several nodes, or ``srun``: ``--launcher``,
:mod:`mmcast.apis.pipeline.launchers`); the pseudo-labels are
made by each stage's ``PseudoLabelHook``. Finished stages (completion
record, :mod:`mmcast.utils.stage_state`) are skipped, a stage that crashed
or was killed is resumed from its newest checkpoint (or, when its config
changed since, set aside and trained from the start). The work dir is
locked for one pipeline (a second one refuses, exit 75); checkpoints are
written whole or not at all; Ctrl-C, SIGTERM and SIGHUP stop the stages
(exit 130, 143, 129), and the stages end with the pipeline even when it is
killed. While stages run, a progress
line per stage (or a bar, on a terminal) shows iteration, ETA, loss and val
AP; a failed stage is told by its own exception. ``--stage-cfg-options``
changes one stage; with ``--reuse-from`` an ablation trains only the stages
that change and links the rest from an earlier work dir. The results table
(markdown + json) has the mask AP / AP50 of the teacher before and after
adaptation, the student after stages 2 and 3 and the baseline.

``--methods gd`` (or ``cast gd``) adds Guided Distillation with the same
student, labeled split and seeds: its supervised teacher is the labels-only
baseline of the seed, then ``configs/mmcast/guided_distillation/
guided-distillation_<student>_<dataset>.py`` runs guided burn-in, the switch
and the EMA teacher for as many iterations as the baseline; its student is
a row of the same table. ``--methods gd`` alone runs the baseline and GD
only (no teacher stages).

``--teacher`` swaps the teacher by config only: the default
(``mask2former``) uses the config names above; ``gdino-sam2`` (the
box-prompted teacher: Grounding-DINO boxes → SAM 2 masks) and ``sam3``
(the concept-prompted SAM 3 teacher: one text prompt per class) run the
teacher stages 1a, 1b and 2 from
``configs/mmcast/<stage>_<dataset>_<teacher>.py``; stage 3 and the baseline are student-only and shared. A work dir holds the
stages of one teacher (recorded in ``pipeline_teacher.json``).

On ``toy`` the data are generated here (``--toy-sizes``,
``--toy-image-size``) into ``--data-root`` (``toy/`` and ``toy_source/``;
default ``data/`` of the repository, read by the configs through the
environment variable ``MMCAST_TOY_ROOT``), and θ_T^0 is a stand-in for a
foundation model pre-trained on the domain-shifted ``toy_source`` corpus and
cached in the work dir: the R-34 Mask2Former of
``configs/mmcast/toy/mask2former_r34_source-pretrain_toy.py`` (in
``toy_foundation/``), or, with ``--teacher gdino-sam2``, the tiny
Grounding-DINO + tiny (random, frozen) SAM 2 of
``configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_source-pretrain_toy.py``
(in ``toy_foundation_gdino-sam2/``; its tiny BERT and SAM 2 checkpoint are
written first by :mod:`mmcast.toy.tiny_teachers` into
``<work-dir>/tiny_teachers``, passed on as ``MMCAST_TINY_TEACHERS``), or,
with ``--teacher sam3``, the tiny SAM 3 of
``configs/mmcast/toy/teacher_sam3-tiny_source-pretrain_toy.py`` (in
``toy_foundation_sam3/``; its tiny checkpoint and BPE vocabulary written by
:mod:`mmcast.toy.tiny_sam3` into the same folder).

Your own COCO-format dataset (``images/`` + ``annotations/instances_{train,
val}.json``, any classes) runs as ``custom`` (the paper's sizes: Swin-L
teacher, DINOv2-S student) or ``custom-cpu`` (the toy R-34 teacher / R-18
student, a laptop-sized try), with the configs of ``configs/mmcast/custom/``
(``<stage>_custom.py`` / ``<stage>_custom-cpu.py``): they read the data root,
the class names and the split from ``configs/mmcast/custom/custom_dataset.py``,
the file to edit; ``--data-root``, ``--classes``, ``--percent`` and
``--split-seed`` replace its settings without editing it (the pipeline
passes them to the stages as environment variables). The labeled /
unlabeled split that file names is written by
:func:`mmcast.datasets.semi_split.write_split` (the command line
``tools/split_semi.py``, printed) when it is missing; θ_T^0 is
``--pretrained-teacher`` or, on ``custom-cpu`` without one, a stand-in that
the pipeline trains from scratch on D_l (``<work-dir>/teacher_standin``).
The class names must be categories of the annotation files (checked with
the preflight).

Before the first stage starts, a preflight loads every stage's config (with
the options the pipeline gives it) and checks what it will read: data
roots, annotation files (opened, a sample of their images looked up and
decoded), image and ground-truth folders, checkpoints (loadable, of the
architecture they are loaded into, a frozen teacher trained on the data's
classes), and the work dir (writable; once everything else is in order, with
room for the checkpoints the stages keep). All problems are printed together, one line each, and the
pipeline exits with status 2. ``--dry-run`` prints the stage plan and runs
the preflight only. On ``toy`` the data are generated first (a dry run
generates nothing; files the pipeline makes are not required to exist).

Examples::

    # the toy data (generated here; the "foundation model" stand-in is
    # pre-trained on a domain-shifted toy corpus and cached; so is the
    # students' backbone); two stages at once on a 2-core CPU: make demo
    python tools/cast_pipeline.py toy --work-dir work_dirs/cast_toy \
        --seeds 0 1 2 --methods cast gd --student-init source-pretrained \
        --jobs 2
    # the same with the box-prompted teacher (tiny Grounding-DINO + SAM 2)
    python tools/cast_pipeline.py toy --teacher gdino-sam2 \\
        --work-dir work_dirs/cast_toy_gdino-sam2
    # a quick smoke run on a few tiny images outside the repository
    python tools/cast_pipeline.py toy --teacher gdino-sam2 \\
        --work-dir /tmp/cast --data-root /tmp/cast_data \\
        --toy-sizes 8 4 8 --toy-image-size 64 128 \\
        --iters pretrain=2 1a=1 1b=1 2=1 3=1
    # an ablation: stages 2 and 3 with strong-view negative keys, every
    # other stage linked from the run above
    python tools/cast_pipeline.py toy --work-dir work_dirs/ablation_strong \\
        --seeds 0 1 --reuse-from work_dirs/cast_toy --stage-cfg-options \\
        distill:model.student.panoptic_head.loss_pixel_contrast.negative_keys=strong
    # your own COCO-format data (images/ + annotations/), your classes,
    # on a laptop (θ_T^0: a stand-in trained on D_l)
    python tools/cast_pipeline.py custom-cpu --data-root data/fruit \\
        --classes apple mug --work-dir work_dirs/cast_fruit
    # paper-sized, 25 % labels, shorter stages 2 and 3
    python tools/cast_pipeline.py custom --data-root data/fruit \\
        --classes apple kite mug --work-dir work_dirs/cast_fruit_l \\
        --percent 25 --iters distill=20000 finetune=5000 \\
        --pretrained-teacher checkpoints/mask2former_swin-l_coco.pth
    # Cityscapes, 10 % labels, from a pre-trained teacher checkpoint
    python tools/cast_pipeline.py cityscapes --work-dir work_dirs/cast_cs \\
        --pretrained-teacher checkpoints/mask2former_swin-l_coco.pth

The logic lives in :mod:`mmcast.apis.pipeline` (``run_pipeline`` runs the
same from Python); this file is its command line.
"""
import sys

from mmcast.apis.pipeline import main

if __name__ == '__main__':
    sys.exit(main())
