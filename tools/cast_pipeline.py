# Copyright (c) mmcast contributors. All rights reserved.
"""Run the three CAST stages end to end for a dataset, resumably.

Stage 1a (adapt the teacher on D_l) → pseudo-labels → stage 1b (re-initialise
the teacher, self-train on D_l ∪ pseudo(D_u)) → pseudo-labels → stage 2
(distil into the student) → stage 3 (fine-tune the student on D_l), plus the
labels-only student baseline with as many iterations as stages 2 + 3. Each
stage is ``mim train mmdet configs/mmcast/<stage>_<dataset>.py`` (or
``torchrun ... --launcher pytorch`` with ``--nproc``); the pseudo-labels are
made by each stage's ``PseudoLabelHook``. Finished stages (completion
record, :mod:`mmcast.apis.stage_state`) are skipped, a stage that crashed
or was killed is resumed with ``--resume`` (or, when its config changed
since, set aside and trained from the start). While stages run, a progress
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
box-prompted teacher: Grounding-DINO boxes → SAM 2 masks) runs the teacher
stages 1a, 1b and 2 from ``configs/mmcast/<stage>_<dataset>_gdino-sam2.py``;
stage 3 and the baseline are student-only and shared. A work dir holds the
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
written first by :mod:`mmcast.testing.tiny_teachers` into
``<work-dir>/tiny_teachers``, passed on as ``MMCAST_TINY_TEACHERS``).

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
"""
import argparse
import concurrent.futures
import contextlib
import copy
import glob
import json
import logging
import os
import os.path as osp
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from mmcast.apis import (CRASHED, FINAL_EVAL, FINISHED, NEW, ProgressMonitor,
                         StageFailed, last_checkpoint, logged_metrics,
                         set_aside, stage_status, write_completion)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY_PRETRAIN_CONFIG = 'configs/mmcast/toy/mask2former_r34_source-pretrain_toy.py'
# --student-init source-pretrained (toy): the students load the backbone of
# this R-18, pre-trained on the source corpus like θ_T^0, cached in the folder.
STUDENT_PRETRAIN_CONFIG = \
    'configs/mmcast/toy/mask2former_r18_source-pretrain_toy.py'
STUDENT_FOUNDATION = 'student_foundation'
# custom-cpu without --pretrained-teacher: θ_T^0 is a stand-in, the stage-1a
# config trained from scratch on D_l, in this folder of the work dir.
STANDIN_TEACHER = 'teacher_standin'
DEFAULT_TEACHER = 'mask2former'
# suffix: appended to the config names of TEACHER_STAGES;
# toy_pretrain_config / toy_foundation: θ_T^0 on the toy source corpus and the
# work-dir folder it is cached in; tiny_assets: needs the tiny BERT / SAM 2
# files of mmcast.testing.tiny_teachers.
TEACHERS = {
    'mask2former':
    dict(
        suffix='',
        toy_pretrain_config=TOY_PRETRAIN_CONFIG,
        toy_foundation='toy_foundation',
        tiny_assets=False),
    'gdino-sam2':
    dict(
        suffix='_gdino-sam2',
        toy_pretrain_config='configs/mmcast/toy/'
        'teacher_gdino-tiny_sam2-tiny_source-pretrain_toy.py',
        toy_foundation='toy_foundation_gdino-sam2',
        tiny_assets=True),
}
# What each stage is trained (or tested) from: ``--reuse-from`` links a
# stage only when it runs unchanged and so did everything upstream of it.
UPSTREAM = {
    'toy_foundation': (),
    STANDIN_TEACHER: (),
    STUDENT_FOUNDATION: (),
    'teacher_pretrained': ('toy_foundation', STANDIN_TEACHER),
    'adapt_teacher': ('toy_foundation', STANDIN_TEACHER),
    'adapt_teacher_selftrain': ('adapt_teacher', ),
    'distill': ('adapt_teacher_selftrain', STUDENT_FOUNDATION),
    'finetune': ('distill', ),
    'supervised_student': (STUDENT_FOUNDATION, ),
    'guided_distillation': ('supervised_student', STUDENT_FOUNDATION),
}
# Config keys MMDetection's train / test scripts set from their command line.
SCRIPT_SET_KEYS = ('work_dir', 'launcher', 'resume')
# The stages whose configs name the teacher (architecture or weights).
TEACHER_STAGES = ('adapt_teacher', 'adapt_teacher_selftrain', 'distill')
TEACHER_MARKER = 'pipeline_teacher.json'
METRICS = {'segm_AP': 'coco/segm_mAP', 'segm_AP50': 'coco/segm_mAP_50'}
ROWS = [
    ('supervised_student', 'student, labels only (baseline)'),
    ('teacher_pretrained', 'teacher before adaptation (θ_T^0)'),
    ('adapt_teacher', 'teacher after stage 1a (θ_T\')'),
    ('adapt_teacher_selftrain', 'teacher after stage 1b (θ_T\'\')'),
    ('distill', 'CAST student after stage 2'),
    ('finetune', 'CAST student after stage 3'),
    ('guided_distillation', 'Guided Distillation student'),
]
ROW_NAMES = {
    'supervised_student': 'labels-only student',
    'adapt_teacher_selftrain': 'adapted teacher θ_T\'\'',
    'finetune': 'CAST student (stage 3)',
    'guided_distillation': 'Guided Distillation student',
}
# The differences the table claims, (row, reference row), paired per seed.
CLAIMS = [
    ('finetune', 'supervised_student'),
    ('guided_distillation', 'supervised_student'),
    ('finetune', 'adapt_teacher_selftrain'),  # the paper's headline
]
NOISE_SPLITS = 50  # random val halves of the split-half standard errors
METHODS = ('cast', 'gd')
# Your own COCO-format dataset: configs/mmcast/custom/<stage>_<dataset>.py,
# reading configs/mmcast/custom/custom_dataset.py; the environment variables
# that replace its data root and class names (Python literals).
CUSTOM_DATASETS = ('custom', 'custom-cpu')
CUSTOM_CONFIG_DIR = 'custom'
CUSTOM_TEMPLATE = 'configs/mmcast/custom/custom_dataset.py'
CUSTOM_ROOT_ENV = 'MMCAST_CUSTOM_ROOT'
CUSTOM_CLASSES_ENV = 'MMCAST_CUSTOM_CLASSES'
CUSTOM_PERCENT_ENV = 'MMCAST_CUSTOM_PERCENT'
CUSTOM_SPLIT_SEED_ENV = 'MMCAST_CUSTOM_SPLIT_SEED'
CUSTOM_ENVS = (CUSTOM_ROOT_ENV, CUSTOM_CLASSES_ENV, CUSTOM_PERCENT_ENV,
               CUSTOM_SPLIT_SEED_ENV)
# --iters: the stages whose iterations it sets (pretrain: θ_T^0 or its
# stand-in, and the students' backbone), their aliases and, for the former
# positional form, their order.
ITERS_STAGES = ('pretrain', 'adapt_teacher', 'adapt_teacher_selftrain',
                'distill', 'finetune')
ITERS_ALIASES = {'1a': 'adapt_teacher', '1b': 'adapt_teacher_selftrain',
                 '2': 'distill', '3': 'finetune'}
# Config keys compared when deciding whether a stage runs alike, but that
# change only what is logged.
LOGGING_ONLY_KEYS = (('default_hooks', 'logger', 'interval'), )
# A stage's json log gets at least this many records (progress lines).
PROGRESS_RECORDS = 20
# Guided Distillation's burn-in + distillation config per dataset.
GD_CONFIGS = {
    'toy': 'guided_distillation/guided-distillation_r18_toy',
    'cityscapes': 'guided_distillation/guided-distillation_dinov2-s_cityscapes',
    'coco': 'guided_distillation/guided-distillation_dinov2-s_coco',
    'custom': 'custom/guided-distillation_dinov2-s_custom',
    'custom-cpu': 'custom/guided-distillation_r18_custom-cpu',
}
# Bytes per weight in a training checkpoint: the weights and AdamW's two
# moments, float32.
CHECKPOINT_BYTES_PER_WEIGHT = 12
PREFLIGHT_FAILED = 2


@dataclass
class Stage:
    """One step of the plan: train a config, or test a checkpoint.

    Args:
        key (str): Its results key (and folder name in the seed's dir).
        name (str): Its name in the log, e.g. ``'stage 1a'``.
        config (str): The config, relative to the repository.
        work_dir (str): Its work dir.
        options (list[str]): Its complete ``--cfg-options``.
        max_iters (int, optional): Iterations of a training stage.
        checkpoint (str, optional): The checkpoint a test stage evaluates.
        seed (int, optional): The seed of a seed's stage.
    """
    key: str
    name: str
    config: str
    work_dir: str
    options: List[str] = field(default_factory=list)
    max_iters: Optional[int] = None
    checkpoint: Optional[str] = None
    seed: Optional[int] = None

    @property
    def label(self) -> str:
        """Its name on the console, e.g. ``[seed 0] [stage 2]``."""
        seed = '' if self.seed is None else f'[seed {self.seed}] '
        return f'{seed}[{self.name}]'

    @property
    def final(self) -> Optional[str]:
        """The last checkpoint of a training stage."""
        if self.max_iters is None:
            return None
        return osp.join(self.work_dir, f'iter_{self.max_iters}.pth')

    def describe(self) -> str:
        """One line of the plan."""
        if self.max_iters is None:
            return (f'[{self.name}] test {self.config} on {self.checkpoint}'
                    f' -> {self.work_dir}')
        return (f'[{self.name}] train {self.config} for {self.max_iters} '
                f'iterations -> {self.final}')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'dataset', help='toy, cityscapes, ade20k or coco: uses '
        'configs/mmcast/<stage>_<dataset>.py; custom or custom-cpu: your own '
        'COCO-format dataset (configs/mmcast/custom/<stage>_<dataset>.py, '
        'data and classes from configs/mmcast/custom/custom_dataset.py or '
        '--data-root / --classes)')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument(
        '--teacher', choices=sorted(TEACHERS), default=DEFAULT_TEACHER,
        help='the teacher: mask2former (default) or gdino-sam2, the '
        'box-prompted teacher, whose stages 1a, 1b and 2 use '
        'configs/mmcast/<stage>_<dataset>_gdino-sam2.py')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument(
        '--methods', nargs='+', choices=METHODS, default=['cast'],
        help='cast (default) and/or gd (Guided Distillation); the '
        'labels-only baseline always runs')
    parser.add_argument(
        '--pretrained-teacher',
        help='θ_T^0 checkpoint (toy: made here from the source corpus; '
        'custom-cpu without one: see configs/mmcast/custom/'
        'adapt_teacher_custom-cpu.py)')
    parser.add_argument(
        '--iters', nargs='+', metavar='STAGE=N',
        help='iterations by stage, e.g. --iters distill=1600 finetune=400 '
        '(stages: ' + ', '.join(ITERS_STAGES) + '; aliases 1a, 1b, 2, 3; '
        'pretrain: θ_T^0 or its stand-in and the students\' backbone); the '
        'others keep their config\'s. The former five positional values '
        '(pretrain, 1a, 1b, 2, 3) still work, with 0 for a stage the run '
        'does not have. The baseline and Guided Distillation get 2 + 3')
    parser.add_argument(
        '--student-init', choices=('random', 'source-pretrained'),
        default='random',
        help='toy: the students\' backbone starts from random weights '
        '(default) or from an R-18 pre-trained on the source corpus like '
        f'θ_T^0 ({STUDENT_PRETRAIN_CONFIG}, trained once and cached)')
    parser.add_argument('--nproc', type=int, default=1,
                        help='processes per stage (torchrun, launcher pytorch)')
    parser.add_argument(
        '--jobs', type=int, default=1,
        help='stages run at once (default 1), each after the stages it is '
        'made from: e.g. 2 on a 2-core CPU runs one seed\'s labels-only '
        'baseline while another stage trains; each stage then gets '
        'OMP_NUM_THREADS = CPUs / jobs unless it is set')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra key=value overrides for every stage')
    parser.add_argument(
        '--stage-cfg-options', nargs='+', default=[],
        metavar='STAGE:KEY=VALUE',
        help='an override for one stage, e.g. distill:model.student.'
        'panoptic_head.loss_pixel_contrast.negative_keys=strong (stages: ' +
        ', '.join(UPSTREAM) + ')')
    parser.add_argument(
        '--reuse-from', metavar='WORK_DIR',
        help='an ablation\'s shortcut: link the finished stages of '
        'WORK_DIR that this run would train alike (the config MMEngine '
        'dumped there is the one this run would use, and the stages they '
        'are trained from are linked too); the rest is trained here')
    parser.add_argument('--toy-sizes', type=int, nargs=3, default=[200, 50, 1500],
                        metavar=('TRAIN', 'VAL', 'SOURCE'),
                        help='toy target train/val and source-corpus images')
    parser.add_argument('--toy-image-size', type=int, nargs=2,
                        default=[96, 192], metavar=('H', 'W'),
                        help='toy image height and width')
    parser.add_argument(
        '--data-root',
        help='toy: the folder that gets toy/ and toy_source/ (default: '
        'data/ of the repository); the stages read it through the '
        'environment variable MMCAST_TOY_ROOT, which is set (or, without '
        '--data-root, removed) for them. custom / custom-cpu: the dataset '
        'folder (images/, annotations/instances_{train,val}.json; default: '
        'data_root of configs/mmcast/custom/custom_dataset.py), passed to '
        'the stages')
    parser.add_argument(
        '--classes', nargs='+', metavar='NAME',
        help='custom / custom-cpu: the class names, categories of the '
        'annotation files (default: classes of configs/mmcast/custom/'
        'custom_dataset.py), passed to the stages; every model gets as many '
        'classes')
    parser.add_argument(
        '--percent', type=float,
        help='custom / custom-cpu: the labeled share of the train images '
        '(default: percent of configs/mmcast/custom/custom_dataset.py)')
    parser.add_argument(
        '--split-seed', type=int,
        help='custom / custom-cpu: the seed of the labeled / unlabeled draw '
        '(default: split_seed of configs/mmcast/custom/custom_dataset.py)')
    parser.add_argument(
        '--progress-interval', type=float, default=30.0, metavar='SECONDS',
        help='seconds between the progress lines of the running stages '
        '(default 30; on a terminal a bar per stage instead)')
    parser.add_argument(
        '--verbose', action='store_true',
        help='show everything on the console: the config loader\'s '
        'messages and the stack\'s warnings (by default they go to '
        '<work-dir>/cast_pipeline.log only)')
    parser.add_argument(
        '--dry-run', action='store_true',
        help='print the stage plan (configs, checkpoints, annotation files, '
        'iterations) and run the preflight checks only')
    return parser.parse_args(argv)


def config_path(name: str) -> str:
    """``configs/mmcast/<name>.py``, with an error naming a missing file."""
    path = osp.join('configs', 'mmcast', f'{name}.py')
    if not osp.isfile(osp.join(REPO_ROOT, path)):
        raise FileNotFoundError(
            f'no config {path} for this dataset (and teacher)')
    return path


def read_metrics(work_dir: str) -> Dict[str, float]:
    """The last COCO mask metrics logged in ``work_dir`` (×100).

    A run whose model predicted nothing at all (a box-prompted teacher with
    no detection above its score threshold) gets no COCO metric from mmdet's
    ``CocoMetric``, which logs that instead: its AP is 0.
    """
    record = logged_metrics(work_dir)
    if record is None:
        raise RuntimeError(f'no {METRICS["segm_AP"]} logged under {work_dir}')
    if not record:
        print(f'no predictions at all in {work_dir}: mask AP 0', flush=True)
        return {k: 0.0 for k in METRICS}
    return {k: round(100 * record[v], 1) for k, v in METRICS.items()}


class Pipeline:
    """The stages of one dataset, run through stock MMDet entry points.

    Args:
        args (argparse.Namespace): The parsed command line (see
            :func:`parse_args`).
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ds = args.dataset
        self.teacher = args.teacher
        self.teacher_cfg = TEACHERS[args.teacher]
        self.work_dir = osp.abspath(args.work_dir)
        # The toy data: <data-root>/toy and <data-root>/toy_source.
        data_root = (osp.abspath(args.data_root)
                     if args.data_root else osp.join(REPO_ROOT, 'data'))
        self.toy_root = osp.join(data_root, 'toy')
        self.toy_source_root = osp.join(data_root, 'toy_source')
        # The environment of every stage: the configs read the toy data root
        # (and the tiny teacher files) from it; without --data-root they get
        # their default, data/toy/.
        self.env = dict(os.environ)
        for name in ('MMCAST_TOY_ROOT', ) + CUSTOM_ENVS:
            self.env.pop(name, None)
        if args.student_init != 'random' and self.ds != 'toy':
            raise SystemExit(f'--student-init {args.student_init} is for the '
                             'toy data; the other datasets\' students have '
                             'their own pre-trained backbones (configs)')
        # --student-init source-pretrained: that model's final checkpoint
        self.student_backbone: Optional[str] = None
        if args.jobs < 1:
            raise SystemExit(f'--jobs {args.jobs}: at least 1')
        if args.jobs > 1:  # the CPUs shared among the stages running
            self.env.setdefault('OMP_NUM_THREADS',
                                str(max(1, (os.cpu_count() or 1) // args.jobs)))
        self.custom = self.ds in CUSTOM_DATASETS
        for option in ('classes', 'percent', 'split_seed'):
            if getattr(args, option) is not None and not self.custom:
                raise SystemExit(
                    f'--{option.replace("_", "-")} is for your own dataset '
                    f'({" or ".join(CUSTOM_DATASETS)}), not {self.ds}')
        if args.percent is not None and not 0 < args.percent < 100:
            raise SystemExit(f'--percent {args.percent:g}: the labeled share '
                             'must be above 0 and below 100')
        if self.custom:
            if args.percent is not None:
                self.env[CUSTOM_PERCENT_ENV] = repr(args.percent)
            if args.split_seed is not None:
                self.env[CUSTOM_SPLIT_SEED_ENV] = repr(args.split_seed)
            # Python literals: custom_dataset.py substitutes them as code
            if args.data_root:
                self.env[CUSTOM_ROOT_ENV] = repr(data_root + '/')
            if args.classes:
                if len(set(args.classes)) != len(args.classes):
                    raise SystemExit(
                        f'--classes names a class twice: {args.classes}')
                self.env[CUSTOM_CLASSES_ENV] = repr(tuple(args.classes))
        elif args.data_root:
            self.env['MMCAST_TOY_ROOT'] = self.toy_root + '/'
        if self.teacher_cfg['tiny_assets']:
            self.env['MMCAST_TINY_TEACHERS'] = osp.join(
                self.work_dir, 'tiny_teachers')
        self.stage_options = self._parse_stage_options(
            args.stage_cfg_options)
        self.iters = self.parse_iters()
        # while the stages run: their progress, their processes
        self.monitor: Optional[ProgressMonitor] = None
        self._processes: set = set()
        self._configs: Dict[str, object] = {}  # config files, as loaded
        # files the pipeline writes before the stages (not yet on a dry run)
        self.made_here: List[str] = []

    @staticmethod
    def log_to(path: str) -> None:
        """Append the config loader's messages and Python's warnings (all
        that :func:`quiet_console` keeps off the console) to ``path``."""
        from mmengine.logging import MMLogger

        handler = logging.FileHandler(path, encoding='utf-8')
        handler.setFormatter(logging.Formatter(
            '%(asctime)s %(name)s %(levelname)s: %(message)s'))
        for logger in (MMLogger.get_instance('mmengine'),
                       logging.getLogger('py.warnings')):
            logger.addHandler(handler)

    @staticmethod
    def _parse_stage_options(items: List[str]) -> Dict[str, List[str]]:
        """``STAGE:KEY=VALUE`` items → the ``KEY=VALUE`` list of each stage."""
        options: Dict[str, List[str]] = {}
        for item in items:
            stage, sep, option = item.partition(':')
            if not sep or '=' not in option or stage not in UPSTREAM:
                raise SystemExit(
                    f'--stage-cfg-options {item!r}: expected STAGE:KEY=VALUE '
                    f'with STAGE one of {", ".join(UPSTREAM)}')
            options.setdefault(stage, []).append(option)
        return options

    def _check_work_dir_teacher(self) -> None:
        """Refuse a work dir made with another teacher.

        The stage folders have the same names for every teacher, so a
        finished stage of another teacher would be taken as done. A work dir
        without the record but with stages predates ``--teacher``: it holds
        the default teacher's.
        """
        marker = osp.join(self.work_dir, TEACHER_MARKER)
        if osp.isfile(marker):
            with open(marker, encoding='utf-8') as f:
                previous = json.load(f).get('teacher')
        elif glob.glob(osp.join(self.work_dir, 'seed*')):
            previous = DEFAULT_TEACHER
        else:
            previous = None
        if previous is not None and previous != self.teacher:
            raise SystemExit(
                f'{self.work_dir} holds the stages of --teacher {previous}; '
                f'use another --work-dir for --teacher {self.teacher}')

    def _claim_work_dir(self) -> None:
        """Create the work dir, record its teacher and log there."""
        marker = osp.join(self.work_dir, TEACHER_MARKER)
        try:
            os.makedirs(self.work_dir, exist_ok=True)
            if not osp.isfile(marker):
                with open(marker, 'w', encoding='utf-8') as f:
                    json.dump(dict(teacher=self.teacher), f)
            self.log_to(osp.join(self.work_dir, 'cast_pipeline.log'))
        except OSError as e:
            print(f'work dir {self.work_dir} cannot be written ({e}): '
                  'choose another --work-dir', file=sys.stderr)
            raise SystemExit(PREFLIGHT_FAILED)

    def stage_config(self, stage: str) -> str:
        """The config of ``stage`` for this dataset and teacher."""
        suffix = self.teacher_cfg['suffix'] if stage in TEACHER_STAGES else ''
        folder = f'{CUSTOM_CONFIG_DIR}/' if self.custom else ''
        return config_path(f'{folder}{stage}_{self.ds}{suffix}')

    # -- launching --------------------------------------------------------
    def _command(self, mode: str, config: str, work_dir: str,
                 extra: List[str]) -> List[str]:
        if self.args.nproc > 1:
            import mmdet
            script = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools',
                              f'{mode}.py')
            return [sys.executable, '-m', 'torch.distributed.run',
                    f'--nproc_per_node={self.args.nproc}', script, config,
                    '--launcher', 'pytorch', '--work-dir', work_dir] + extra
        mim = osp.join(osp.dirname(sys.executable), 'mim')
        return [mim, mode, 'mmdet', config, '--work-dir', work_dir] + extra

    def _run(self, stage: Stage, cmd: List[str]) -> None:
        """Run ``cmd`` for ``stage``, its output into the stage's log; a
        training run's progress is shown meanwhile."""
        log_file = osp.join(stage.work_dir, 'pipeline.log')
        self.say('$ ' + ' '.join(cmd))
        followed = stage.max_iters is not None and self.monitor is not None
        if followed:
            self.monitor.start(stage.label, stage.work_dir, stage.max_iters)
        try:
            with open(log_file, 'a', encoding='utf-8') as log:
                proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log,
                                        stderr=subprocess.STDOUT,
                                        env=self.env)
                self._processes.add(proc)
                try:
                    returncode = proc.wait()
                finally:
                    self._processes.discard(proc)
        finally:
            if followed:
                self.monitor.finish(stage.label)
        if returncode != 0:
            raise StageFailed(stage.label, returncode, log_file)

    def stop_processes(self) -> None:
        """Stop the stages' processes still running (e.g. on Ctrl-C)."""
        for proc in list(self._processes):
            proc.terminate()
        for proc in list(self._processes):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def say(self, line: str) -> None:
        """Print a line of the pipeline's own (between progress bars)."""
        if self.monitor is not None:
            self.monitor.write(line)
        else:
            print(line, flush=True)

    def train_stage(self, key: str, name: str, config: str, work_dir: str,
                    max_iters: int, options: List[str]) -> Stage:
        """A training stage of ``max_iters`` with its complete options; its
        json log gets a record at least every ``max_iters /``
        :data:`PROGRESS_RECORDS` iterations (the progress lines)."""
        interval = self.config_file(config).default_hooks.logger.interval
        opts = [
            f'train_cfg.max_iters={max_iters}',
            f'train_cfg.val_interval={max_iters}',
            f'param_scheduler.end={max_iters}',
            f'default_hooks.checkpoint.interval={max(max_iters // 4, 1)}',
            'default_hooks.logger.interval='
            f'{max(1, min(interval, max_iters // PROGRESS_RECORDS))}',
        ] + options + self.args.cfg_options + self.stage_options.get(key, [])
        return Stage(key, name, config, work_dir, opts, max_iters=max_iters)

    def test_stage(self, key: str, config: str, checkpoint: str,
                   work_dir: str, options: List[str]) -> Stage:
        """A stage that evaluates ``checkpoint`` with ``config``."""
        return Stage(key, key, config, work_dir,
                     options + self.args.cfg_options +
                     self.stage_options.get(key, []), checkpoint=checkpoint)

    def train(self, stage: Stage) -> str:
        """Train one stage → its final checkpoint.

        Finished (:func:`~mmcast.apis.stage_status`): skipped. Crashed with
        the config of this run: resumed (``--resume``); when it crashed
        after its last checkpoint (in the final evaluation, say), that
        checkpoint is evaluated. Crashed with another config: its work dir
        is set aside and the stage trains from the start. The completion
        record is written last.
        """
        final = stage.final
        status = stage_status(stage.work_dir, stage.max_iters)
        if status == FINISHED:
            self.say(f'[{stage.name}] done: {final}')
            return final
        if status == CRASHED and not self._same_config(stage, stage.work_dir):
            moved = set_aside(stage.work_dir)
            self.say(f'[{stage.name}] the unfinished run in {stage.work_dir} '
                     f'had another config: moved to {moved}; training from '
                     'the start')
            status = NEW
        os.makedirs(stage.work_dir, exist_ok=True)
        last = last_checkpoint(stage.work_dir) if status == CRASHED else None
        if last is None or osp.realpath(last) != osp.realpath(final):
            self.say(f'[{stage.name}] training {stage.config} for '
                     f'{stage.max_iters} iterations' +
                     (f' (resumed from {osp.basename(last)})' if last
                      else ''))
            self._run(stage, self._command(
                'train', stage.config, stage.work_dir,
                (['--resume'] if last else []) + ['--cfg-options'] +
                stage.options))
        if logged_metrics(stage.work_dir) is None:
            # trained, but not evaluated: e.g. it crashed in its final
            # evaluation, after its last checkpoint
            self.say(f'[{stage.name}] evaluating {final}')
            self._run(stage, self._command(
                'test', stage.config, osp.join(stage.work_dir, FINAL_EVAL),
                ['--checkpoint', final, '--cfg-options'] + stage.options))
        write_completion(stage.work_dir, final, stage.max_iters)
        return final

    def test(self, stage: Stage) -> None:
        """Evaluate the stage's checkpoint with ``mim test``."""
        os.makedirs(stage.work_dir, exist_ok=True)
        self._run(stage, self._command(
            'test', stage.config, stage.work_dir,
            ['--checkpoint', stage.checkpoint, '--cfg-options'] +
            stage.options))

    def eval_options(self, seed_dir: str, key: str) -> List[str]:
        """Evaluator overrides that write a stage's files under ``seed_dir``.

        ``CocoMetric`` writes the predictions on val to
        :meth:`predictions_file` (for the split-half noise of the results
        table). The toy and Cityscapes configs' ``CityScapesMetric`` (their
        second evaluator) writes (and first deletes) one fixed folder under
        ``./work_dirs/cityscapes_metric/``; each stage gets its own folder so
        that concurrent runs do not clear each other's files. (Neither inside
        the stage's work dir, where :func:`read_metrics` looks for logs.)
        """
        coco = self.predictions_file(seed_dir, key)[:-len('.segm.json')]
        if self.ds not in ('toy', 'cityscapes'):
            return [f'val_evaluator.outfile_prefix={coco}',
                    f'test_evaluator.outfile_prefix={coco}']
        out = osp.join(seed_dir, 'cityscapes_metric', key)
        return [f'val_evaluator.0.outfile_prefix={coco}',
                f'test_evaluator.0.outfile_prefix={coco}',
                f'val_evaluator.1.outfile_prefix={out}',
                f'test_evaluator.1.outfile_prefix={out}']

    @staticmethod
    def predictions_file(seed_dir: str, key: str) -> str:
        """The COCO results json of stage ``key`` on val."""
        return osp.join(seed_dir, 'predictions', f'{key}.segm.json')

    # -- data and the toy foundation model --------------------------------
    @staticmethod
    def _toy_data_current(root: str, **expected) -> bool:
        """Whether ``root`` holds a complete toy dataset made as expected."""
        meta = osp.join(root, 'toy_meta.json')
        if not osp.isfile(meta):
            return False
        with open(meta, encoding='utf-8') as f:
            meta = json.load(f)
        return bool(meta.get('complete')) and all(
            meta.get(k) == v for k, v in expected.items())

    def prepare_toy_data(self) -> None:
        """Toy target and source data and the target's 10 % split."""
        from mmcast.datasets.semi_split import write_split
        from mmcast.datasets.toy_scenes import make_toy_dataset

        n_train, n_val, n_source = self.args.toy_sizes
        height, width = self.args.toy_image_size
        for root, style, train, val in ((self.toy_root, 'target', n_train,
                                         n_val),
                                        (self.toy_source_root, 'source',
                                         n_source, n_val)):
            if not self._toy_data_current(root, num_train=train, num_val=val,
                                          height=height, width=width):
                print(f'generating {root} ({style} style)', flush=True)
                make_toy_dataset(root, num_train=train, num_val=val,
                                 height=height, width=width, seed=0,
                                 style=style)
        ann_dir = osp.join(self.toy_root, 'annotations')
        write_split(osp.join(ann_dir, 'instancesonly_filtered_gtFine_train.json'),
                    osp.join(ann_dir, 'semi'), seed=1, percent=10)

    # -- your own COCO-format dataset ------------------------------------
    def custom_settings(self):
        """``custom_dataset.py`` as the stages read it (through the
        baseline's config, which every run has)."""
        return self.config_file(self.stage_config('supervised_student'))

    @staticmethod
    def _in_repo(path: str) -> str:
        """A config path as the stages (run in the repository) see it."""
        return osp.normpath(osp.join(REPO_ROOT, path))

    def prepare_custom_split(self, dry: bool) -> None:
        """Write the labeled / unlabeled split the custom configs read if it
        is missing (seed and percent of ``custom_dataset.py``); a dry run
        prints the command only."""
        from mmcast.datasets.semi_split import write_split

        cfg = self.custom_settings()
        root = cfg.data_root
        wanted = [self._in_repo(root + cfg.labeled_ann_file),
                  self._in_repo(root + cfg.unlabeled_ann_file)]
        if all(osp.isfile(p) for p in wanted):
            return
        train_ann = self._in_repo(root + cfg.train_ann_file)
        out_dir = osp.dirname(wanted[0])
        command = (f'python tools/split_semi.py {train_ann} --percent '
                   f'{cfg.percent:g} --seed {cfg.split_seed}')
        if out_dir != osp.dirname(train_ann):
            command += f' --out-dir {out_dir}'
        if dry:
            print(f'the labeled / unlabeled split is missing; a run writes '
                  f'it like: {command}', flush=True)
            # (the preflight takes folders; check_custom_dataset has checked
            # the annotation files that are not made here)
            self.made_here += sorted({osp.dirname(p) for p in wanted})
            return
        print(f'writing the labeled / unlabeled split: {command}', flush=True)
        try:
            paths = write_split(train_ann, out_dir, cfg.split_seed,
                                cfg.percent)
        except (FileNotFoundError, ValueError, KeyError) as e:
            print(f'preflight: cannot write the split of {train_ann} ({e}; '
                  f'data_root of {CUSTOM_TEMPLATE} or --data-root)',
                  file=sys.stderr)
            raise SystemExit(PREFLIGHT_FAILED)
        for path in (paths['labeled'], paths['unlabeled']):
            print(f'  {path}', flush=True)

    def check_custom_dataset(self) -> List[str]:
        """Problems with the custom dataset the configs read: data root and
        classes not the ones asked for (``custom_dataset.py`` lost its
        override lines), missing annotation files, classes that are no
        category of an annotation file (``CocoDataset`` would drop them
        without a word) or not in the order of its categories (its labels
        would not match the names)."""
        cfg = self.custom_settings()
        problems = []
        asked = (('data_root', CUSTOM_ROOT_ENV),
                 ('classes', CUSTOM_CLASSES_ENV),
                 ('percent', CUSTOM_PERCENT_ENV),
                 ('split_seed', CUSTOM_SPLIT_SEED_ENV))
        for key, env in asked:
            value = tuple(cfg[key]) if key == 'classes' else cfg[key]
            if env in self.env and repr(value) != self.env[env]:
                problems.append(
                    f'{CUSTOM_TEMPLATE}: {key} is {value!r}, not '
                    f'{self.env[env]} of the command line: keep its line '
                    f'that reads ${env}')
        classes = tuple(cfg.classes)
        for name in (cfg.train_ann_file, cfg.val_ann_file):
            ann_file = self._in_repo(cfg.data_root + name)
            if not osp.isfile(ann_file):
                problems.append(
                    f'missing annotation file {ann_file}: put the dataset '
                    f'there or point data_root of {CUSTOM_TEMPLATE} (or '
                    '--data-root) at it')
                continue
            try:
                with open(ann_file, encoding='utf-8') as f:
                    names = [c['name'] for c in json.load(f)['categories']]
            except (ValueError, AttributeError, TypeError, KeyError) as e:
                problems.append(f'{ann_file}: not a COCO instance annotation '
                                f'file ({type(e).__name__}: {e})')
                continue
            missing = [c for c in classes if c not in names]
            in_order = [n for n in names if n in classes]
            if missing:
                problems.append(
                    f'{ann_file}: no category named {missing} (classes: '
                    f'{list(classes)}; its categories: {names}): set classes '
                    f'in {CUSTOM_TEMPLATE} or --classes to names of its '
                    'categories')
            elif in_order != list(classes):
                problems.append(
                    f'{ann_file}: classes {list(classes)} are not in the '
                    f'order of its categories, {in_order} (CocoDataset '
                    'numbers the labels in that order): reorder classes in '
                    f'{CUSTOM_TEMPLATE} or --classes')
        return problems

    def toy_pretrain_stage(self, key: str, name: str, config: str,
                           folder: str, pretrain_iters: int) -> Stage:
        """A model pre-trained on the toy source corpus (θ_T^0, or the
        students' backbone), cached in ``<work-dir>/<folder>``."""
        options = []
        if self.args.data_root:
            source = self.toy_source_root + '/'
            val_ann = (source +
                       'annotations/instancesonly_filtered_gtFine_val.json')
            options = [
                f'train_dataloader.dataset.data_root={source}',
                f'val_dataloader.dataset.data_root={source}',
                f'test_dataloader.dataset.data_root={source}',
                f'val_evaluator.ann_file={val_ann}',
                f'test_evaluator.ann_file={val_ann}',
            ]
        return self.train_stage(key, name, config,
                                osp.join(self.work_dir, folder),
                                pretrain_iters, options)

    def student_init_options(self, model: str) -> List[str]:
        """``--student-init source-pretrained``: the options that load the
        pre-trained backbone into the student at ``model`` (e.g.
        ``'model.student'``); none by default."""
        if self.student_backbone is None:
            return []
        key = f'{model}.backbone.init_cfg'
        return [f'{key}._delete_=True', f'{key}.type=Pretrained',
                f'{key}.checkpoint={self.student_backbone}',
                f'{key}.prefix=backbone.']

    def prepare_tiny_teacher_assets(self) -> str:
        """The tiny BERT folder and SAM 2 checkpoint (idempotent).

        Written into ``<work-dir>/tiny_teachers`` and passed to the stages
        as ``MMCAST_TINY_TEACHERS``.
        """
        from mmcast.testing.tiny_teachers import build_tiny_teacher_assets
        root = self.env['MMCAST_TINY_TEACHERS']
        build_tiny_teacher_assets(root)
        return root

    # -- the plan -------------------------------------------------------------
    def seed_stages(self, seed: int, teacher0: str,
                    iters: List[int]) -> List[Stage]:
        """The stages of one seed, in order: θ_T^0 tested, 1a, 1b, 2, 3 and
        the labels-only baseline."""
        wd = osp.join(self.work_dir, f'seed{seed}')
        it_1a, it_1b, it_2, it_3 = iters
        pseudo = osp.join(wd, 'pseudo_labels')

        def pseudo_opts(name: str) -> List[str]:
            out = osp.join(pseudo, f'{name}.json')
            return [f'train_dataloader.dataset.datasets.1.ann_file={out}',
                    f'custom_hooks.0.out_file={out}']

        def opts(name: str) -> List[str]:
            return [f'randomness.seed={seed}'] + self.eval_options(wd, name)

        def train(key: str, name: str, max_iters: int,
                  options: List[str]) -> Stage:
            return self.train_stage(key, name, self.stage_config(key),
                                    osp.join(wd, key), max_iters,
                                    opts(key) + options)

        adapt_cfg = self.stage_config('adapt_teacher')
        stage_1a = train('adapt_teacher', 'stage 1a', it_1a,
                         [f'load_from={teacher0}'])
        stage_1b = train(
            'adapt_teacher_selftrain', 'stage 1b', it_1b,
            pseudo_opts('stage1b') + [
                f'model.student.init_cfg.checkpoint={teacher0}',
                f'model.teacher_checkpoint={stage_1a.final}'
            ])
        stage_2 = train('distill', 'stage 2', it_2, pseudo_opts('stage2') +
                        [f'model.teacher_checkpoint={stage_1b.final}'] +
                        self.student_init_options('model.student'))
        stage_3 = train('finetune', 'stage 3', it_3,
                        [f'model.init_cfg.checkpoint={stage_2.final}'])
        baseline = train('supervised_student', 'baseline', it_2 + it_3,
                         self.student_init_options('model'))
        stages = []
        if 'cast' in self.args.methods:
            stages = [
                self.test_stage('teacher_pretrained', adapt_cfg, teacher0,
                                osp.join(wd, 'teacher_pretrained'),
                                opts('teacher_pretrained')),
                stage_1a, stage_1b, stage_2, stage_3
            ]
        stages.append(baseline)
        if 'gd' in self.args.methods:
            stages.append(self.gd_stage(wd, baseline, opts))
        for stage in stages:
            stage.seed = seed
        return stages

    def gd_stage(self, wd: str, baseline: Stage, opts) -> Stage:
        """Guided Distillation from the seed's baseline (its supervised
        teacher), as long as the baseline; burn-in scaled alike."""
        if self.ds not in GD_CONFIGS:
            raise SystemExit(f'no Guided Distillation config for {self.ds!r} '
                             f'(have: {", ".join(sorted(GD_CONFIGS))})')
        key = 'guided_distillation'
        config = config_path(GD_CONFIGS[self.ds])
        cfg = self.config_file(config)
        hook = next(i for i, h in enumerate(cfg.custom_hooks)
                    if h['type'] == 'GuidedTeacherHook')
        # scaled alike, and the switch stays inside the run
        burn_in = round(cfg.custom_hooks[hook]['burn_in_iters'] *
                        baseline.max_iters / cfg.train_cfg.max_iters)
        burn_in = max(1, min(burn_in, baseline.max_iters - 1))
        return self.train_stage(
            key, 'Guided Distillation', config, osp.join(wd, key),
            baseline.max_iters, opts(key) + [
                f'model.teacher_checkpoint={baseline.final}',
                f'custom_hooks.{hook}.burn_in_iters={burn_in}'
            ] + self.student_init_options('model.student'))

    def plan(self) -> Tuple[List[Stage], Dict[int, List[Stage]]]:
        """The stages before the seeds (θ_T^0 or its stand-in, the students'
        backbone) and those of each seed."""
        first: List[Stage] = []
        teacher0 = None  # θ_T^0: CAST only
        cast = 'cast' in self.args.methods
        if cast and self.ds == 'toy':
            pretrain_config = self.teacher_cfg['toy_pretrain_config']
            first.append(self.toy_pretrain_stage(
                'toy_foundation', 'teacher pre-training (source corpus)',
                pretrain_config, self.teacher_cfg['toy_foundation'],
                self._iters('pretrain', pretrain_config)))
            teacher0 = first[0].final
        elif cast and self.args.pretrained_teacher:
            teacher0 = osp.abspath(self.args.pretrained_teacher)
        elif cast and self.ds == 'custom-cpu':
            first.append(self.standin_teacher_stage())
            teacher0 = first[0].final
        elif cast:
            raise SystemExit('--pretrained-teacher is required for '
                             f'{self.ds!r}: the θ_T^0 checkpoint')
        if self.args.student_init == 'source-pretrained':
            first.append(self.toy_pretrain_stage(
                STUDENT_FOUNDATION, 'student backbone pre-training '
                '(source corpus)', STUDENT_PRETRAIN_CONFIG, STUDENT_FOUNDATION,
                self._iters('pretrain', STUDENT_PRETRAIN_CONFIG)))
            self.student_backbone = first[-1].final
        stage_iters = [self._iters(name, self.stage_config(name)) for name in
                       ITERS_STAGES[1:]]
        return first, {s: self.seed_stages(s, teacher0, stage_iters)
                       for s in self.args.seeds}

    def standin_teacher_stage(self) -> Stage:
        """custom-cpu without ``--pretrained-teacher``: θ_T^0 is the stage-1a
        config trained from scratch on D_l (no foundation model: the
        teacher stages then start from weights that saw only D_l)."""
        config = self.stage_config('adapt_teacher')
        stage = self.train_stage(
            STANDIN_TEACHER, 'stand-in θ_T^0 (trained on D_l)', config,
            osp.join(self.work_dir, STANDIN_TEACHER),
            self._iters('pretrain', config), ['load_from=None'])
        print(f'θ_T^0: no --pretrained-teacher, so a stand-in is trained from '
              f'scratch on the labeled split D_l ({config}, '
              f'{stage.max_iters} iterations) -> {stage.final}; with no '
              'foundation model behind it, expect little from the teacher '
              'stages', flush=True)
        return stage

    def parse_iters(self) -> Dict[str, int]:
        """``--iters`` as ``{stage: iterations}`` (:data:`ITERS_STAGES`).

        ``STAGE=N`` items name their stage (or an alias of
        :data:`ITERS_ALIASES`); five plain numbers are the former positional
        form, where 0 stands for a stage the run does not have. A stage the
        run does not have is an error, not ignored.
        """
        items = self.args.iters or []
        if items and all(i.lstrip('-').isdigit() for i in items):
            if len(items) != len(ITERS_STAGES):
                raise SystemExit(
                    f'--iters {" ".join(items)}: give STAGE=N items (e.g. '
                    '--iters distill=1600 finetune=400) or the five values '
                    'of ' + ', '.join(ITERS_STAGES))
            named = {k: int(v) for k, v in zip(ITERS_STAGES, items)
                     if int(v) != 0 or k in self.planned_iters()}
        else:
            named = {}
            for item in items:
                name, sep, value = item.partition('=')
                name = ITERS_ALIASES.get(name, name)
                if not sep or name not in ITERS_STAGES or \
                        not value.isdigit():
                    raise SystemExit(
                        f'--iters {item!r}: expected STAGE=N with STAGE one '
                        f'of {", ".join(ITERS_STAGES)} (or '
                        f'{", ".join(ITERS_ALIASES)}) and N a whole number')
                named[name] = int(value)
        for name, value in named.items():
            if name not in self.planned_iters():
                raise SystemExit(
                    f'--iters: this run has no {name} stage ({self.ds}, '
                    f'--methods {" ".join(self.args.methods)}' +
                    (', --pretrained-teacher' if self.args.pretrained_teacher
                     else '') + '): leave it out' +
                    (' (or give 0 in the positional form)'
                     if name == 'pretrain' else ''))
            if value < 1:
                raise SystemExit(f'--iters {name}={value}: at least 1')
        return named

    def planned_iters(self) -> Tuple[str, ...]:
        """The :data:`ITERS_STAGES` this run trains."""
        cast = 'cast' in self.args.methods
        pretrain = self.args.student_init != 'random' or cast and (
            self.ds == 'toy' or self.ds == 'custom-cpu' and
            not self.args.pretrained_teacher)
        return (('pretrain', ) if pretrain else ()) + (
            ITERS_STAGES[1:] if cast else ('distill', 'finetune'))

    def _iters(self, name: str, config: str) -> int:
        """Iterations of stage ``name``: ``--iters`` or its config's."""
        return self.iters.get(name) or self._config_iters(config)

    @contextlib.contextmanager
    def stage_environment(self) -> Iterator[None]:
        """``os.environ`` as the stages see it (the configs read it)."""
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def config_file(self, path: str):
        """A config as the stages load it (their environment), cached."""
        from mmengine.config import Config

        if path not in self._configs:
            with self.stage_environment():
                self._configs[path] = Config.fromfile(
                    osp.join(REPO_ROOT, path))
        return copy.deepcopy(self._configs[path])

    def load_config(self, stage: Stage):
        """The stage's config as its run loads it (options merged)."""
        from mmengine.config import DictAction

        parser = argparse.ArgumentParser()
        parser.add_argument('--cfg-options', nargs='+', action=DictAction)
        cfg = self.config_file(stage.config)
        with self.stage_environment():
            cfg.merge_from_dict(
                parser.parse_args(['--cfg-options'] +
                                  stage.options).cfg_options)
        return cfg

    def preflight(self, stages: List[Stage]) -> List[str]:
        """Check every file the stages read; return the problems.

        Runs from the repository root with the stages' environment, as the
        stages do. Missing files under the work dir (and, on toy, the data
        the pipeline generates) are made by earlier stages.
        """
        from mmdet.utils import register_all_modules

        import mmcast  # noqa: F401  (registers mmcast modules)
        from mmcast.utils.preflight import Preflight

        warnings.filterwarnings('ignore', 'pkg_resources is deprecated')
        register_all_modules(init_default_scope=False)
        made_here = [self.work_dir] + self.made_here
        if self.ds == 'toy':
            made_here += [self.toy_root, self.toy_source_root]
        check = Preflight(made_here)
        to_train = []
        cwd = os.getcwd()
        os.chdir(REPO_ROOT)
        try:
            for stage in stages:
                try:
                    cfg = self.load_config(stage)
                except Exception as e:  # noqa: BLE001 - reported as a line
                    check.problems.append(
                        f'{stage.config}: cannot be loaded with the '
                        f'pipeline\'s options ({type(e).__name__}: {e})')
                    continue
                with self.stage_environment():
                    check.check_stage(cfg, f'{stage.name} ({stage.config})',
                                      stage.checkpoint)
                if stage.max_iters is not None and stage_status(
                        stage.work_dir, stage.max_iters) != FINISHED:
                    to_train.append(cfg)
            # the estimate builds every model: only worth it when the rest
            # is in order
            need = 0 if check.problems else sum(
                self._checkpoint_bytes(check, cfg) for cfg in to_train)
        finally:
            os.chdir(cwd)
        check.check_work_dir(self.work_dir, need)
        for note in check.notes:
            print(f'note: {note}', flush=True)
        return check.problems

    @staticmethod
    def _checkpoint_bytes(check, cfg) -> int:
        """The bytes of the checkpoints a training stage keeps."""
        hook = cfg.get('default_hooks', {}).get('checkpoint') or {}
        kept = hook.get('max_keep_ckpts', -1)
        kept = 4 if kept is None or kept < 0 else min(kept, 4)
        kept += bool(hook.get('save_last', True))
        try:
            weights = check.num_weights(cfg.model)
        except Exception:  # noqa: BLE001 - no estimate for this stage
            return 0
        return kept * weights * CHECKPOINT_BYTES_PER_WEIGHT

    # -- reusing the stages of another work dir ---------------------------
    def link_reused(self, stages: List[Stage], dry: bool) -> None:
        """``--reuse-from``: link every finished stage of that work dir that
        this run would train (or test) alike (see :meth:`_reusable`;
        ``--nproc`` is not compared). A stage trained here stays; a link
        left by an earlier run (with or without ``--reuse-from`` now) stays
        when it is still alike, and is refused when this run changes its
        stage. A stage finished here with another config than this run's
        (e.g. after a default changed) is refused too, not skipped. A dry
        run only prints the links."""
        base = self.args.reuse_from and osp.abspath(self.args.reuse_from)
        planned = {osp.relpath(st.work_dir, self.work_dir) for st in stages}
        linked = set()
        for stage in stages:
            rel = osp.relpath(stage.work_dir, self.work_dir)
            if osp.islink(stage.work_dir):
                if not self._reusable(stage, stage.work_dir, linked, planned):
                    raise SystemExit(
                        f'{stage.work_dir} links to '
                        f'{os.readlink(stage.work_dir)}, but this run trains '
                        f'{stage.name} differently: remove the link (or use '
                        'another --work-dir)')
                linked.add(rel)
                continue
            if stage.max_iters is not None and \
                    self._finished_in(stage, stage.work_dir) and \
                    not self._same_config(stage, stage.work_dir):
                raise SystemExit(
                    f'{stage.work_dir} holds {stage.name} trained with '
                    'another config than this run\'s: remove it (or use '
                    'another --work-dir)')
            source = osp.join(base, rel) if base else ''
            if not base or osp.lexists(stage.work_dir) or \
                    not self._reusable(stage, source, linked, planned):
                continue  # trained here
            linked.add(rel)
            print(f'[{stage.name}] reused from {source}', flush=True)
            if dry:
                continue
            links = [(source, stage.work_dir)]
            if osp.dirname(rel):  # a seed's stage: its val predictions too
                links.append((self.predictions_file(osp.dirname(source),
                                                    stage.key),
                              self.predictions_file(
                                  osp.dirname(stage.work_dir), stage.key)))
            for target, link in links:
                if osp.exists(target) and not osp.lexists(link):
                    os.makedirs(osp.dirname(link), exist_ok=True)
                    os.symlink(target, link)

    def _reusable(self, stage: Stage, source: str, linked: set,
                  planned: set) -> bool:
        """Whether ``source`` holds ``stage`` finished and trained alike
        (:meth:`_same_config`), and every stage it is trained from
        (:data:`UPSTREAM`) is linked too."""
        rel = osp.relpath(stage.work_dir, self.work_dir)
        return all(u in linked or u not in planned
                   for u in self._upstream(rel, stage.key)) and \
            self._finished_in(stage, osp.realpath(source)) and \
            self._same_config(stage, source)

    def _check_reuse_base(self, base: str) -> None:
        """The ``--reuse-from`` work dir: another one, of this teacher."""
        if osp.realpath(base) == osp.realpath(self.work_dir):
            raise SystemExit('--reuse-from names the --work-dir itself')
        marker = osp.join(base, TEACHER_MARKER)
        if not osp.isfile(marker):
            raise SystemExit(f'--reuse-from {base}: no pipeline work dir '
                             f'(no {TEACHER_MARKER})')
        with open(marker, encoding='utf-8') as f:
            teacher = json.load(f).get('teacher')
        if teacher != self.teacher:
            raise SystemExit(f'--reuse-from {base} holds the stages of '
                             f'--teacher {teacher}, not {self.teacher}')

    def _upstream(self, rel: str, key: str) -> List[str]:
        """The work dirs (relative) of the stages ``key`` is made from."""
        top = {'toy_foundation': self.teacher_cfg['toy_foundation'],
               STUDENT_FOUNDATION: STUDENT_FOUNDATION,
               STANDIN_TEACHER: STANDIN_TEACHER}
        return [top.get(u, osp.join(osp.dirname(rel), u))
                for u in UPSTREAM[key]]

    def _same_config(self, stage: Stage, source: str) -> bool:
        """Whether the config ``stage`` would run with, its work dir's paths
        moved to where ``source`` was trained, is the one MMEngine dumped
        into ``source`` (all but the keys the train / test scripts set from
        their command line)."""
        from mmengine.config import Config

        dumped = osp.join(source, osp.basename(stage.config))
        if not osp.isfile(dumped):
            return False
        # the work dir the stage was trained in (source may link it from
        # there, through the links of earlier ablations)
        rel = os.sep + osp.relpath(stage.work_dir, self.work_dir)
        trained_in = osp.realpath(source)
        base = trained_in[:-len(rel)] if trained_in.endswith(rel) else \
            source[:-len(rel)]
        ours = self.load_config(stage).to_dict()
        if stage.checkpoint:  # what test.py sets from --checkpoint
            ours['load_from'] = stage.checkpoint
        theirs = Config.fromfile(dumped).to_dict()
        for key in SCRIPT_SET_KEYS:
            ours.pop(key, None)
            theirs.pop(key, None)
        for *parents, key in LOGGING_ONLY_KEYS:
            for cfg in (ours, theirs):
                for parent in parents:
                    cfg = cfg.get(parent) if isinstance(cfg, dict) else None
                if isinstance(cfg, dict):
                    cfg.pop(key, None)
        # paths into this work dir (options, MMCAST_TINY_TEACHERS) moved
        return _plain(ours, (self.work_dir, base)) == _plain(theirs)

    @staticmethod
    def _finished_in(stage: Stage, work_dir: str) -> bool:
        """Whether ``work_dir`` holds ``stage`` finished
        (:func:`~mmcast.apis.stage_status`), or (a test stage) its row in
        the seed's results."""
        if stage.max_iters is not None:
            return stage_status(work_dir, stage.max_iters) == FINISHED
        results = osp.join(osp.dirname(work_dir), 'results.json')
        if not osp.isfile(results):
            return False
        with open(results, encoding='utf-8') as f:
            return stage.key in json.load(f)

    # -- running ----------------------------------------------------------------
    def run_stages(self, first: List[Stage],
                   per_seed: Dict[int, List[Stage]]) -> Dict[int, Dict]:
        """Run (or skip) every stage, up to ``--jobs`` at once, each after
        the stages it is made from (:data:`UPSTREAM`); among the stages
        that may start, the first in the plan starts first. Returns each
        seed's metrics (also kept in ``seed<N>/results.json``). After a
        failed stage no other starts; those running finish, then it raises.
        """
        jobs = [(None, st) for st in first] + [
            (seed, st) for seed, stages in per_seed.items() for st in stages]
        index = {(seed, st.key): i for i, (seed, st) in enumerate(jobs)}
        needs = [{index[k] for u in UPSTREAM[st.key]
                  for k in ((seed, u), (None, u)) if k in index}
                 for seed, st in jobs]
        results = {}
        for seed in per_seed:
            path = osp.join(self.work_dir, f'seed{seed}', 'results.json')
            results[seed] = json.load(open(path)) if osp.isfile(path) else {}
        waiting, done, failed = list(range(len(jobs))), set(), []
        self.monitor = ProgressMonitor(self.args.progress_interval)
        try:
            self._schedule(jobs, needs, results, waiting, done, failed)
        except KeyboardInterrupt:
            self.stop_processes()
            raise
        finally:
            self.monitor.close()
            self.monitor = None
        for other in failed[1:]:
            print(other.report() if isinstance(other, StageFailed) else
                  repr(other), file=sys.stderr, flush=True)
        if failed:
            raise failed[0]
        return results

    def _schedule(self, jobs: list, needs: list, results: Dict,
                  waiting: list, done: set, failed: list) -> None:
        """:meth:`run_stages`' loop: start what may start, collect what
        ended."""
        with concurrent.futures.ThreadPoolExecutor(self.args.jobs) as pool:
            running = {}
            while waiting or running:
                ready = [i for i in waiting if needs[i] <= done]
                while ready and not failed and len(running) < self.args.jobs:
                    i = ready.pop(0)
                    waiting.remove(i)
                    seed, stage = jobs[i]
                    running[pool.submit(self._run_job, stage,
                                        results.get(seed, {}))] = i
                if not running:
                    break
                finished, _ = concurrent.futures.wait(
                    running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    i = running.pop(future)
                    if future.exception() is not None:
                        failed.append(future.exception())
                        continue
                    done.add(i)
                    seed, stage = jobs[i]
                    if seed is not None:
                        self._record(seed, stage, results[seed])

    def _run_job(self, stage: Stage, results: Dict) -> None:
        """Train a stage (skipped when finished), or test it when its
        seed's ``results`` have no row for it yet (a linked one was tested
        where it lives)."""
        if stage.max_iters is not None:
            self.train(stage)
        elif stage.key not in results and not osp.islink(stage.work_dir):
            self.test(stage)

    def _record(self, seed: int, stage: Stage, results: Dict) -> None:
        """Add a finished stage's metrics to its seed's results.json."""
        results_file = osp.join(self.work_dir, f'seed{seed}', 'results.json')
        if stage.key not in results:
            results[stage.key] = read_metrics(stage.work_dir)
            with open(results_file + '.tmp', 'w', encoding='utf-8') as f:
                json.dump(results, f, indent=2, sort_keys=True)
            os.replace(results_file + '.tmp', results_file)
        self.say(f'[seed {seed}] [{stage.key}] mask AP '
                 f'{results[stage.key]["segm_AP"]}')

    def run(self) -> Dict:
        """Plan, preflight, then run every stage (``--dry-run``: no run)."""
        dry = self.args.dry_run
        self._check_work_dir_teacher()
        if self.args.reuse_from:  # before anything is written
            self._check_reuse_base(osp.abspath(self.args.reuse_from))
        if not dry:
            self._claim_work_dir()
        if self.ds == 'toy' and not dry:
            self.prepare_toy_data()
            if self.teacher_cfg['tiny_assets']:
                self.prepare_tiny_teacher_assets()
        problems = []
        if self.custom:
            problems = self.check_custom_dataset()
            # (with problems, as on a dry run: the command, no files)
            self.prepare_custom_split(dry or bool(problems))
        first, per_seed = self.plan()
        stages = first + [st for seed in per_seed.values() for st in seed]
        self.link_reused(stages, dry)
        if dry:
            print('stage plan:')
            for stage in stages:
                print('  ' + stage.describe())
                print('    --cfg-options ' + ' '.join(stage.options))
        problems += self.preflight(stages)
        if problems:
            print(f'preflight: {len(problems)} problem(s), no stage was '
                  'started:', file=sys.stderr)
            for line in problems:
                print(f'  {line}', file=sys.stderr)
            raise SystemExit(PREFLIGHT_FAILED)
        print('preflight: ok', flush=True)
        if dry:
            return {}
        results = self.run_stages(first, per_seed)
        baseline = next(st for st in next(iter(per_seed.values()))
                        if st.key == 'supervised_student')
        self.write_table(results, self.val_ann_file(baseline))
        return results

    def _config_iters(self, path: str) -> int:
        return self.config_file(path).train_cfg.max_iters

    def val_ann_file(self, stage: Stage) -> str:
        """The val ground truth ``stage``'s ``CocoMetric`` reads."""
        evaluator = self.load_config(stage).val_evaluator
        if isinstance(evaluator, (list, tuple)):
            evaluator = evaluator[0]
        return osp.join(REPO_ROOT, evaluator['ann_file'])

    def eval_noise(self, seed: int, keys: List[str], gt_file: str) -> Dict:
        """Split-half standard errors of the rows of one seed, and of the
        differences the table claims (see
        :func:`mmcast.evaluation.split_half_noise`); rows evaluated before
        the predictions were kept are left out."""
        from mmcast.evaluation import split_half_noise

        wd = osp.join(self.work_dir, f'seed{seed}')
        files = {k: self.predictions_file(wd, k) for k in keys}
        files = {k: f for k, f in files.items() if osp.isfile(f)}
        pairs = [p for p in CLAIMS if p[0] in files and p[1] in files]
        if not files or not osp.isfile(gt_file):
            return {}
        return split_half_noise(gt_file, files, pairs, NOISE_SPLITS, seed)

    def write_table(self, per_seed: Dict[int, Dict],
                    gt_file: Optional[str] = None) -> None:
        """Write ``results.md`` / ``results.json`` and print the table.

        Each row: mask AP / AP50 per seed, mean ± standard deviation over
        the seeds, and the evaluation noise: the split-half standard error
        of a seed's AP on the val images (mean over the seeds). The claimed
        differences (:data:`CLAIMS`) are paired per seed, with their mean ±
        standard deviation over the seeds and their split-half standard
        error. With a teacher other than the default, the title names it
        and the json has a ``teacher`` key.
        """
        seeds = sorted(per_seed)
        teacher = ('' if self.teacher == DEFAULT_TEACHER else
                   f' (teacher: {self.teacher})')
        methods = ' and '.join(
            {'cast': 'CAST', 'gd': 'Guided Distillation'}[m]
            for m in METHODS if m in self.args.methods)
        keys = [k for k, _ in ROWS if all(k in per_seed[s] for s in seeds)]
        noise = {s: self.eval_noise(s, keys, gt_file) for s in seeds
                 } if gt_file else {}
        n_val = next((n['num_images'] for n in noise.values() if n), None)
        lines = [
            f'# {methods} on {self.ds}{teacher}: mask AP / AP50 (COCO-style, ×100)',
            '',
            '| model | ' + ' | '.join(f'seed {s}' for s in seeds) +
            ' | mean ± sd AP | eval SE |',
            '|---|' + '---|' * (len(seeds) + 2)
        ]
        summary = {}
        for key, label in ROWS:
            if key not in keys:
                continue
            cells = [per_seed[s][key] for s in seeds]
            stats = _spread([c['segm_AP'] for c in cells])
            ses = [noise[s]['models'][key]['se'] for s in seeds
                   if key in noise.get(s, {}).get('models', {})]
            summary[key] = dict(
                mean_segm_AP=stats['mean'], std_segm_AP=stats['std'],
                per_seed=dict(zip(seeds, cells)))
            if ses:
                summary[key]['eval_se'] = dict(zip(seeds, _rounded(ses)))
            lines.append(f'| {label} | ' + ' | '.join(
                f'{c["segm_AP"]} / {c["segm_AP50"]}' for c in cells) +
                f' | {_pm(stats)} | ' +
                (f'{sum(ses) / len(ses):.1f}' if len(ses) == len(seeds)
                 else '') + ' |')
        gains = {}
        for key, ref in CLAIMS:
            if key not in summary or ref not in summary:
                continue
            diffs = [per_seed[s][key]['segm_AP'] - per_seed[s][ref]['segm_AP']
                     for s in seeds]
            stats = _spread(diffs)
            name = f'{key} - {ref}'
            ses = [noise[s]['pairs'][name]['se'] for s in seeds
                   if name in noise.get(s, {}).get('pairs', {})]
            gains[name] = dict(mean=stats['mean'], std=stats['std'],
                               per_seed=dict(zip(seeds, _rounded(diffs))))
            if len(ses) == len(seeds):
                gains[name]['eval_se'] = dict(zip(seeds, _rounded(ses)))
            per = ', '.join(
                f'{d:+.1f}' + (f' ± {se:.1f}' if len(ses) == len(seeds)
                               else '') for d, se in
                zip(diffs, ses if len(ses) == len(seeds) else diffs))
            lines += ['', f'{ROW_NAMES[key]} − {ROW_NAMES[ref]}: '
                      f'{_pm(stats, sign=True)} mask AP (per seed' +
                      (' ± split-half SE' if len(ses) == len(seeds) else '') +
                      f': {per})']
        if n_val:
            lines += ['', f'eval SE: split-half standard error of one seed\'s '
                      f'AP on the {n_val} val images ({NOISE_SPLITS} random '
                      'halves); mean ± sd: over the seeds.']
        table = '\n'.join(lines) + '\n'
        with open(osp.join(self.work_dir, 'results.md'), 'w', encoding='utf-8') as f:
            f.write(table)
        result = dict(dataset=self.ds)
        if self.teacher != DEFAULT_TEACHER:
            result['teacher'] = self.teacher
        result.update(seeds=seeds, rows=summary, differences=gains,
                      minus_baseline={
                          key: gains[f'{key} - supervised_student']
                          for key in ('finetune', 'guided_distillation')
                          if f'{key} - supervised_student' in gains})
        if n_val:
            result['eval_noise'] = dict(num_val_images=n_val,
                                        num_splits=NOISE_SPLITS)
        if 'finetune' in result['minus_baseline']:
            result['stage3_minus_baseline'] = \
                result['minus_baseline']['finetune']['mean']
        with open(osp.join(self.work_dir, 'results.json'), 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=2)
        print(table, flush=True)


def _plain(value, move: Tuple[str, str] = ('', '')):
    """A config value with tuples as lists (as a dumped config reads) and,
    in its strings, the path ``move[0]`` replaced by ``move[1]``."""
    if isinstance(value, dict):
        return {k: _plain(v, move) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, move) for v in value]
    if isinstance(value, str) and move[0]:
        return value.replace(*move)
    return value


def _rounded(values: List[float]) -> List[float]:
    return [round(v, 2) for v in values]


def _spread(values: List[float]) -> Dict[str, Optional[float]]:
    """Mean and sample standard deviation (``None`` for one value)."""
    mean = sum(values) / len(values)
    std = (sum((v - mean)**2 for v in values) / (len(values) - 1))**0.5 \
        if len(values) > 1 else None
    return dict(mean=round(mean, 2), std=None if std is None else round(std, 2))


def _pm(stats: Dict[str, Optional[float]], sign: bool = False) -> str:
    mean = f'{stats["mean"]:+.2f}' if sign else f'{stats["mean"]:.2f}'
    return mean if stats['std'] is None else f'{mean} ± {stats["std"]:.2f}'


def quiet_console() -> None:
    """Keep the config loader's messages (``Using env variable ...``) and
    Python's warnings off the console; :meth:`Pipeline.log_to` writes them
    to a file."""
    from mmengine.logging import MMLogger

    # the logger MMEngine's print_log(logger='current') writes to
    for handler in MMLogger.get_instance('mmengine').handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger('py.warnings')
    warnings_logger.addHandler(logging.NullHandler())
    warnings_logger.propagate = False


def main(argv: Optional[List[str]] = None) -> None:
    """Run the pipeline; a failed stage is told by its own exception
    (exit 1), Ctrl-C stops the stages running (exit 130)."""
    args = parse_args(argv)
    if not args.verbose:
        quiet_console()
    try:
        Pipeline(args).run()
    except StageFailed as failure:
        print(failure.report(), file=sys.stderr, flush=True)
        print('the finished stages are kept: fix the cause and run the '
              'same command again to go on from there', file=sys.stderr)
        raise SystemExit(1)
    except KeyboardInterrupt:
        print('interrupted: the finished stages are kept; run the same '
              'command again to resume', file=sys.stderr)
        raise SystemExit(130)


if __name__ == '__main__':
    main()
