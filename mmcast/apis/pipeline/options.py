# Copyright (c) mmcast contributors. All rights reserved.
"""The pipeline's options (the command line of ``tools/cast_pipeline.py``).

A library call never exits: an option argparse refuses (an unknown flag, a
value of the wrong type, a choice not offered, a missing one) raises
:class:`~mmcast.apis.pipeline.errors.PipelineError` with argparse's own
words; the command line prints it and exits 2, as argparse would.
``--help`` raises :class:`HelpRequested`, whose message is the help; the
command line prints it on stdout and exits 0.
"""
import argparse
from typing import List, Optional

from mmcast.toy.worlds import WORLDS

from .errors import PipelineError
from .launchers import LAUNCHERS, STAGE_STARTS
from .settings import (DEFAULT_TEACHER, DISTILL_TEACHERS, ITERS_STAGES,
                       METHODS, STUDENT_FOUNDATION, TEACHERS)
from .stage_graph import stage_keys
from .stage_table import stage_config_path, student_variants


class HelpRequested(PipelineError):
    """``--help`` was given: the message is the help (usage included); no
    run. The command line prints it on stdout and exits 0."""


class _HelpAction(argparse.Action):
    """``-h`` / ``--help``: raise :class:`HelpRequested` where argparse
    would print the help and exit."""

    def __init__(self, option_strings: List[str], dest: str,
                 **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0,
                         default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args, **kwargs):
        raise HelpRequested(parser.format_help())


class OptionParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises :class:`PipelineError` where
    argparse would print the usage and exit (:class:`HelpRequested` for
    ``--help``)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(add_help=False, **kwargs)
        self.add_argument('-h', '--help', action=_HelpAction,
                          help='show this help message and exit')

    def error(self, message: str):
        raise PipelineError(f'{self.format_usage()}{self.prog}: error: '
                            f'{message}')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The parsed command line ``argv`` (default: ``sys.argv[1:]``).

    Raises:
        HelpRequested: ``--help``, with the help as its message.
        PipelineError: Options argparse refuses, with its message.
    """
    parser = OptionParser(
        description='Run the three CAST stages end to end for a dataset, '
        'resumably.')
    parser.add_argument(
        'dataset', help='toy, cityscapes, ade20k or coco: uses '
        'configs/mmcast/<stage>_<dataset>.py; custom or custom-cpu: your own '
        'COCO-format dataset (configs/mmcast/custom/<stage>_<dataset>.py, '
        'data and classes from configs/mmcast/custom/custom_dataset.py or '
        '--data-root / --classes)')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument(
        '--teacher', choices=sorted(TEACHERS), default=DEFAULT_TEACHER,
        help='the teacher: mask2former (default); gdino-sam2, the '
        'box-prompted teacher (Grounding-DINO boxes -> SAM 2 masks); sam3, '
        'the concept-prompted SAM 3 teacher (one text prompt per class). '
        'Stages 1a, 1b and 2 use configs/mmcast/<stage>_<dataset>_<teacher>'
        '.py')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument(
        '--methods', nargs='+', choices=METHODS, default=['cast'],
        help='cast (default) and/or gd (Guided Distillation); the '
        'labels-only baseline always runs')
    parser.add_argument(
        '--distill-teacher',
        choices=list(DISTILL_TEACHERS),
        default=None,
        help='stage 2\'s teacher, which pseudo-labels D_u: selftrained '
        '(default, the paper\'s: θ_T\'\' of stage 1b), adapted (θ_T\' of '
        'stage 1a), ensemble (both predicting together, fused per '
        'instance by TeacherEnsemble) or pretrained (θ_T^0: no teacher '
        'adaptation)')
    parser.add_argument(
        '--ablation', metavar='TABLE:ROW',
        help='one row of an ablation table of configs/mmcast/ablations.json '
        '(e.g. sampler:uniform, loss:pseudo_labels, stages:no_adaptation): '
        'its stage overrides (before --stage-cfg-options) and stage-2 '
        'teacher; the results table names it. With --reuse-from a row '
        'trains only the stages it changes')
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
        'does not have. The baseline gets 2 + 3; Guided Distillation its '
        'config\'s length and burn-in (Cityscapes: 90k / 50k), scaled as the '
        'baseline is')
    parser.add_argument(
        '--student', choices=student_variants(), default=None,
        help='another student than the recipe\'s, for stages 2 and 3, the '
        'labels-only baseline and Guided Distillation: the rows of that '
        'variant in configs/mmcast/stages.json (e.g. eomt-dinov3-tiny on '
        'the toy: the encoder-only EoMT student)')
    parser.add_argument(
        '--student-init', choices=('random', 'source-pretrained'),
        default='random',
        help='toy: the students\' backbone starts from random weights '
        '(default) or from an R-18 pre-trained on the source corpus like '
        f'θ_T^0 ({stage_config_path("toy", STUDENT_FOUNDATION)}, trained '
        'once and cached)')
    parser.add_argument('--nproc', type=int, default=1,
                        help='processes (GPUs) per node and stage')
    parser.add_argument(
        '--batch-per-gpu', type=int, metavar='N',
        help='training images per GPU of every stage (default: each '
        'config\'s, 2 for the real-size ones). The global batch is GPUs x '
        'N; every stage\'s lr follows it from its recipe\'s batch by the '
        'square-root rule, iterations stay, and the preflight prints the '
        'global batch, lr and epochs of each stage (semi-supervised stages '
        'need N >= 2)')
    parser.add_argument(
        '--labeled-split', metavar='SEED@TAG',
        help='cityscapes, ade20k, coco: the labeled split D_l of every stage '
        'and method, as tools/split_semi.py names its files: 1@perc_5 '
        '(a published list, Cityscapes: perc_5/10/20/30) or 1@10 (a seeded '
        '10 %% draw, seed 1); default: the dataset config\'s (Cityscapes '
        '1@perc_10, ADE20K and COCO 1@10)')
    parser.add_argument(
        '--launcher', choices=LAUNCHERS, default=None,
        help='none (MMDetection\'s train.py, as mim train runs it), '
        'pytorch (torchrun on one or --nnodes nodes: run the pipeline on '
        'every node with its --node-rank) or slurm (srun per stage, from a '
        'login node); default: pytorch with --nproc > 1, else none')
    parser.add_argument('--nnodes', type=int, default=1)
    parser.add_argument('--node-rank', type=int, default=0,
                        help='this node (pytorch launcher); only node 0 '
                        'writes the completion records and the table')
    parser.add_argument('--master-addr', default='127.0.0.1')
    parser.add_argument('--master-port', type=int, default=29500)
    parser.add_argument('--partition', default='',
                        help='Slurm partition (launcher slurm)')
    parser.add_argument('--cpus-per-task', type=int, default=5,
                        help='Slurm --cpus-per-task (launcher slurm)')
    parser.add_argument('--srun-args', default='',
                        help='further srun arguments in one string, e.g. '
                        '"--quotatype=auto --mem=0" (launcher slurm)')
    parser.add_argument(
        '--stage-start', choices=STAGE_STARTS, default='fork',
        help='fork (default): with --launcher none on the CPU (Linux), each '
        'stage is forked from one process that imported torch, MMEngine, '
        'MMDetection and mmcast once a run (about 8 processor-seconds less '
        'a stage); fresh: each stage is a new Python process, as with the '
        'other launchers and on a GPU')
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
        ', '.join(stage_keys()) + ')')
    parser.add_argument(
        '--reuse-from', metavar='WORK_DIR',
        help='an ablation\'s shortcut: link the finished stages of '
        'WORK_DIR that this run would train alike (the config MMEngine '
        'dumped there is the one this run would use, and the stages they '
        'are trained from are linked too); the rest is trained here. From '
        'a run of another --teacher only the stages that do not use the '
        'teacher can be linked (labels-only, the students\' backbone, '
        'Guided Distillation)')
    parser.add_argument('--toy-sizes', type=int, nargs=3, default=[200, 50, 1500],
                        metavar=('TRAIN', 'VAL', 'SOURCE'),
                        help='toy target train/val and source-corpus images')
    parser.add_argument(
        '--toy-unlabeled', type=int, metavar='N',
        help='toy: the number of unlabeled target images D_u (default: the '
        'train images but the labeled 10 %%). More than that adds generated '
        'train images to D_u only: the labeled images stay the same ones, '
        'and the data go to <data-root>/toy_u<N> (the source corpus, and '
        'so the pre-trained models, are shared)')
    parser.add_argument(
        '--toy-world', choices=WORLDS, default='streets',
        help='toy: the generator of the target and source data: the bundled '
        'street scenes, objects on a table seen from above (5 other '
        'classes, rotation, overlapping colours, wood vs tiles), or cells '
        '(50 to 200 small touching cells per image, grayscale, 2 classes); '
        'a world other than streets gets its own folders, '
        '<data-root>/toy_<world>... (python tools/make_toy_dataset.py '
        '--world tabletop writes one alone)')
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
        '--max-instances', type=int, metavar='N',
        help='the instance capacity of every stage: each model gets at '
        'least N queries (never fewer than its config has) and keeps N '
        'detections per image, the pseudo-label filter N pseudo-labels, '
        'the evaluator counts N. Default: custom / custom-cpu choose it '
        'from the instances per image of D_l and val (the next multiple of '
        '10 at or above 1.25 x their 99th percentile, at least the '
        'configs\' own); the other datasets keep their configs\' and get a '
        'note where D_l is denser')
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
        'iterations), what would be trained again or marked and why, and '
        'run the preflight checks only')
    parser.add_argument(
        '--redo-on-code-change', action='store_true',
        help='train again the finished stages made by other code (mmcast\'s '
        'source changed since); by default they are kept and their rows '
        'marked')
    parser.add_argument(
        '--allow-partial-init', action='store_true',
        help='accept a given checkpoint that leaves most of a module of the '
        'model it initialises (its backbone, its pixel decoder) random; '
        'by default such a checkpoint is refused before any stage starts')
    return parser.parse_args(argv)
