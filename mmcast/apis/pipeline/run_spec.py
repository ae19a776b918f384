# Copyright (c) mmcast contributors. All rights reserved.
"""What one run of the pipeline is: its options, checked once.

:meth:`RunSpec.from_args` turns the parsed command line into a
:class:`RunSpec` and refuses what cannot run with one
:class:`~mmcast.apis.pipeline.errors.PipelineError` naming the option; the
rest of the pipeline reads the spec and never the command line. The spec
also holds what follows from the options alone: the launch settings, the
toy data's folders and the stages' environment (the configs read the data
root, the custom classes and the tiny teachers' files from it).
"""
import argparse
import os
import os.path as osp
import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from mmcast.utils.cpu_distributed import CPU_DIST_ENV
from .ablations import AblationRow, distill_teacher_of, find_ablation
from .errors import PipelineError
from .labeled_split import check_split_name
from .launchers import LaunchConfig, parse_cfg_options
from .overrides import Overrides
from .settings import (CUSTOM_CLASSES_ENV, CUSTOM_DATASETS, CUSTOM_ENVS,
                       CUSTOM_PERCENT_ENV, CUSTOM_ROOT_ENV,
                       CUSTOM_SPLIT_SEED_ENV, ITERS_ALIASES, ITERS_STAGES,
                       REPO_ROOT, SPLIT_DATASETS, TEACHERS)
from .stage_graph import stage_keys
from .stage_table import find_row, stage_rows

# the toy target's labeled share of its --toy-sizes TRAIN images
TOY_PERCENT = 10


@dataclass(frozen=True)
class ToyData:
    """The toy data of a run (``toy`` only).

    Args:
        num_train (int): Target train images of the labeled split's pool.
        num_val (int): Target (and source) val images.
        num_source (int): Source-corpus train images.
        image_size (tuple[int, int]): (H, W).
        world (str): The generator (``streets``, ``tabletop``, ...).
        extra_unlabeled (int): Generated train images added to D_u only
            (``--toy-unlabeled``).
        root (str): The target data's folder.
        source_root (str): The source corpus' folder.
    """
    num_train: int
    num_val: int
    num_source: int
    image_size: Tuple[int, int]
    world: str
    extra_unlabeled: int
    root: str
    source_root: str


@dataclass(frozen=True)
class RunSpec:
    """One run of the pipeline (see :meth:`from_args`).

    Args:
        dataset (str): ``toy``, ``cityscapes``, ``ade20k``, ``coco``,
            ``custom`` or ``custom-cpu``.
        work_dir (str): The run's folder (absolute).
        teacher (str): A key of :data:`~mmcast.apis.pipeline.settings.
            TEACHERS`.
        seeds (tuple[int]): The seeds.
        methods (tuple[str]): ``cast`` and / or ``gd``.
        pretrained_teacher (str, optional): θ_T^0 (absolute path).
        iters (dict): ``--iters`` by stage (:data:`~mmcast.apis.pipeline.
            settings.ITERS_STAGES`).
        student_init (str): ``random`` or ``source-pretrained``.
        student (str, optional): ``--student``: a variant of the table of
            stage configs for the student's stages (None: the recipe's).
        distill_teacher (str): Stage 2's teacher, one of
            :data:`~mmcast.apis.pipeline.settings.DISTILL_TEACHERS`.
        ablation (AblationRow, optional): ``--ablation``: the row of an
            ablation table this run is (its options are in
            ``stage_options`` and ``distill_teacher`` already).
        launch (LaunchConfig): How the stages are launched.
        jobs (int): Stages run at once.
        cfg_options (Overrides): ``--cfg-options``: overrides of every
            stage.
        stage_options (dict): ``{stage key: Overrides}`` of
            ``--stage-cfg-options``.
        reuse_from (str, optional): The work dir to link stages from.
        data_root (str, optional): ``--data-root`` (absolute).
        toy (ToyData, optional): The toy data (``toy`` only).
        classes / percent / split_seed: Your own dataset's settings.
        labeled_split (str, optional): ``--labeled-split``.
        batch_per_gpu (int, optional): ``--batch-per-gpu``.
        max_instances (int, optional): ``--max-instances``.
        progress_interval (float): Seconds between progress lines.
        verbose (bool): Everything on the console.
        dry_run (bool): Plan and preflight only.
        redo_on_code_change / allow_partial_init (bool): The options.
        env (dict): The environment of every stage.
    """
    dataset: str
    work_dir: str
    teacher: str
    seeds: Tuple[int, ...]
    methods: Tuple[str, ...]
    pretrained_teacher: Optional[str]
    iters: Dict[str, int]
    student_init: str
    launch: LaunchConfig
    jobs: int
    cfg_options: Overrides
    stage_options: Dict[str, Overrides]
    reuse_from: Optional[str] = None
    data_root: Optional[str] = None
    toy: Optional[ToyData] = None
    classes: Optional[Tuple[str, ...]] = None
    percent: Optional[float] = None
    split_seed: Optional[int] = None
    labeled_split: Optional[str] = None
    batch_per_gpu: Optional[int] = None
    max_instances: Optional[int] = None
    progress_interval: float = 30.0
    verbose: bool = False
    dry_run: bool = False
    redo_on_code_change: bool = False
    allow_partial_init: bool = False
    env: Dict[str, str] = field(default_factory=dict)
    distill_teacher: str = 'selftrained'
    ablation: Optional[AblationRow] = None
    student: Optional[str] = None

    @property
    def teacher_settings(self) -> dict:
        """The teacher's entry of :data:`~mmcast.apis.pipeline.settings.
        TEACHERS`."""
        return TEACHERS[self.teacher]

    @property
    def custom(self) -> bool:
        """Your own COCO-format dataset."""
        return self.dataset in CUSTOM_DATASETS

    @property
    def cast(self) -> bool:
        return 'cast' in self.methods

    @property
    def tiny_teachers(self) -> Optional[str]:
        """The folder of the toy teacher's tiny offline files, if it has
        any."""
        if not self.teacher_settings['tiny_assets']:
            return None
        return osp.join(self.work_dir, 'tiny_teachers')

    def options_of(self, key: str) -> Overrides:
        """The overrides of the command line for stage ``key``:
        ``--cfg-options``, then ``--stage-cfg-options``."""
        return self.cfg_options + self.stage_options.get(key, Overrides())

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'RunSpec':
        """The spec of a parsed command line
        (:func:`~mmcast.apis.pipeline.parse_args`).

        Raises:
            PipelineError: An option that does not apply to the dataset, a
                value out of range, or a missing one.
        """
        ds = args.dataset
        custom = ds in CUSTOM_DATASETS
        work_dir = osp.abspath(args.work_dir)
        data_root = osp.abspath(args.data_root) if args.data_root else None
        _check_dataset_options(args, custom)
        toy = _toy_data(args, data_root)
        launch = _launch(args)
        env = _stage_environment(args, custom, toy, data_root, launch,
                                 work_dir)
        ablation = find_ablation(args.ablation) if args.ablation else None
        stage_options = _stage_options(args.stage_cfg_options, ablation)
        planned = planned_iters(args)
        spec = cls(
            dataset=ds, work_dir=work_dir, teacher=args.teacher,
            seeds=tuple(args.seeds), methods=tuple(args.methods),
            pretrained_teacher=(osp.abspath(args.pretrained_teacher)
                                if args.pretrained_teacher else None),
            iters=_iters(args, planned), student_init=args.student_init,
            launch=launch, jobs=args.jobs,
            cfg_options=parse_cfg_options(args.cfg_options,
                                          '--cfg-options'),
            stage_options=stage_options,
            reuse_from=(osp.abspath(args.reuse_from)
                        if args.reuse_from else None),
            data_root=data_root, toy=toy,
            classes=tuple(args.classes) if args.classes else None,
            percent=args.percent, split_seed=args.split_seed,
            labeled_split=args.labeled_split,
            batch_per_gpu=args.batch_per_gpu,
            max_instances=args.max_instances,
            progress_interval=args.progress_interval,
            verbose=args.verbose, dry_run=args.dry_run, env=env,
            redo_on_code_change=args.redo_on_code_change,
            allow_partial_init=args.allow_partial_init,
            distill_teacher=distill_teacher_of(args.distill_teacher,
                                               ablation),
            ablation=ablation, student=args.student)
        return spec


def _toy_data(args: argparse.Namespace,
              data_root: Optional[str]) -> Optional[ToyData]:
    """The toy data's sizes and folders: ``<data-root>/toy[_<world>]
    [_u<N>]`` and ``<data-root>/toy[_<world>]_source``."""
    from mmcast.datasets.semi_split import num_labeled_images
    extra = 0
    if args.toy_unlabeled is not None:
        if args.dataset != 'toy':
            raise PipelineError(f'--toy-unlabeled is for the toy data, not '
                                f'{args.dataset}')
        n_train = args.toy_sizes[0]
        own = n_train - num_labeled_images(n_train, TOY_PERCENT)
        if args.toy_unlabeled < own:
            raise PipelineError(
                f'--toy-unlabeled {args.toy_unlabeled}: the split of the '
                f'{n_train} train images (--toy-sizes) leaves {own} '
                'unlabeled already; for fewer, give fewer train images')
        extra = args.toy_unlabeled - own
    if args.toy_world != 'streets' and args.dataset != 'toy':
        raise PipelineError(f'--toy-world is for the toy data, not '
                            f'{args.dataset}')
    root = data_root or osp.join(REPO_ROOT, 'data')
    world = '' if args.toy_world == 'streets' else f'_{args.toy_world}'
    n_train, n_val, n_source = args.toy_sizes
    return ToyData(
        num_train=n_train, num_val=n_val, num_source=n_source,
        image_size=tuple(args.toy_image_size), world=args.toy_world,
        extra_unlabeled=extra,
        root=osp.join(root, f'toy{world}' + (
            f'_u{args.toy_unlabeled}' if extra else '')),
        source_root=osp.join(root, f'toy{world}_source'))


def _check_dataset_options(args: argparse.Namespace, custom: bool) -> None:
    """The dataset, options that apply to some datasets only, and their
    ranges."""
    ds = args.dataset
    datasets = list(dict.fromkeys(row['dataset'] for row in stage_rows()))
    if ds not in datasets:
        raise PipelineError(f'unknown dataset {ds!r}: one of '
                            f'{", ".join(datasets)}')
    if args.student_init != 'random' and ds != 'toy':
        raise PipelineError(
            f'--student-init {args.student_init} is for the toy data; the '
            'other datasets\' students have their own pre-trained backbones '
            '(configs)')
    if args.distill_teacher not in (None, 'selftrained') and \
            'cast' not in args.methods:
        raise PipelineError(
            f'--distill-teacher {args.distill_teacher} chooses CAST stage '
            '2\'s teacher: add --methods cast')
    if args.student:
        _check_student(args)
    if args.ablation and 'cast' not in args.methods:
        raise PipelineError(f'--ablation {args.ablation} is a CAST run: add '
                            '--methods cast')
    if args.jobs < 1:
        raise PipelineError(f'--jobs {args.jobs}: at least 1')
    for option in ('classes', 'percent', 'split_seed'):
        if getattr(args, option) is not None and not custom:
            raise PipelineError(
                f'--{option.replace("_", "-")} is for your own dataset '
                f'({" or ".join(CUSTOM_DATASETS)}), not {ds}')
    if args.percent is not None and not 0 < args.percent < 100:
        raise PipelineError(f'--percent {args.percent:g}: the labeled share '
                            'must be above 0 and below 100')
    if args.classes and len(set(args.classes)) != len(args.classes):
        raise PipelineError(f'--classes names a class twice: {args.classes}')
    if args.max_instances is not None and args.max_instances < 1:
        raise PipelineError(f'--max-instances {args.max_instances}: at '
                            'least 1')
    if args.batch_per_gpu is not None and args.batch_per_gpu < 1:
        raise PipelineError(f'--batch-per-gpu {args.batch_per_gpu}: at '
                            'least 1')
    if args.labeled_split is not None:
        if ds not in SPLIT_DATASETS:
            raise PipelineError(
                f'--labeled-split is for {", ".join(SPLIT_DATASETS)}, not '
                f'{ds}' + (' (your own dataset: --percent and '
                           '--split-seed)' if custom else ''))
        check_split_name(args.labeled_split)
    with_gd = sorted({row['dataset'] for row in stage_rows()
                      if row['stage'] == 'guided_distillation'})
    if 'gd' in args.methods and ds not in with_gd:
        raise PipelineError(f'no Guided Distillation config for {ds!r} '
                            f'(have: {", ".join(with_gd)})')
    if 'cast' in args.methods and not args.pretrained_teacher and \
            ds not in ('toy', 'custom-cpu'):
        raise PipelineError('--pretrained-teacher is required for '
                            f'{ds!r}: the θ_T^0 checkpoint')


def _launch(args: argparse.Namespace) -> LaunchConfig:
    try:
        return LaunchConfig(
            launcher=args.launcher or (
                'pytorch' if args.nproc * args.nnodes > 1 else 'none'),
            nproc=args.nproc, nnodes=args.nnodes, node_rank=args.node_rank,
            master_addr=args.master_addr, master_port=args.master_port,
            partition=args.partition, cpus_per_task=args.cpus_per_task,
            srun_args=shlex.split(args.srun_args),
            stage_start=args.stage_start)
    except ValueError as e:
        raise PipelineError(f'error: {e}')


def literal_for_config(value) -> str:
    """``value`` as the environment variable a config's ``{{'$VAR:...'}}``
    placeholder turns back into ``value``: its Python literal, with every
    backslash doubled, since MMEngine fills a placeholder as a
    regular-expression replacement template (which reads ``\\\\`` as one
    backslash); so a class ``a\\b`` arrives as ``a\\b``, not a
    backspace."""
    return repr(value).replace('\\', '\\\\')


def _stage_environment(args: argparse.Namespace, custom: bool,
                       toy: ToyData, data_root: Optional[str],
                       launch: LaunchConfig, work_dir: str) -> Dict[str, str]:
    """``os.environ`` as every stage gets it: the configs read the toy data
    root and the tiny teachers' files, or your dataset's root, classes and
    split, from it (Python literals for the custom ones); without
    ``--data-root`` the toy configs get their default, ``data/toy/``."""
    env = dict(os.environ)
    for name in ('MMCAST_TOY_ROOT', ) + CUSTOM_ENVS:
        env.pop(name, None)
    if launch.launcher == 'pytorch':
        import torch
        if not torch.cuda.is_available():  # gloo on a CPU machine
            env.setdefault(CPU_DIST_ENV, '1')
    if args.jobs > 1:  # the CPUs shared among the stages running
        env.setdefault('OMP_NUM_THREADS',
                       str(max(1, (os.cpu_count() or 1) // args.jobs)))
    if custom:
        if args.percent is not None:
            env[CUSTOM_PERCENT_ENV] = literal_for_config(args.percent)
        if args.split_seed is not None:
            env[CUSTOM_SPLIT_SEED_ENV] = literal_for_config(args.split_seed)
        if data_root:
            env[CUSTOM_ROOT_ENV] = literal_for_config(data_root + '/')
        if args.classes:
            env[CUSTOM_CLASSES_ENV] = literal_for_config(tuple(args.classes))
    elif args.data_root or toy.extra_unlabeled or args.toy_world != 'streets':
        env['MMCAST_TOY_ROOT'] = toy.root + '/'
    if TEACHERS[args.teacher]['tiny_assets']:
        env['MMCAST_TINY_TEACHERS'] = osp.join(work_dir, 'tiny_teachers')
    return env


def _stage_options(items: List[str],
                   ablation: Optional[AblationRow] = None
                   ) -> Dict[str, Overrides]:
    """``STAGE:KEY=VALUE`` items → the overrides of each stage, after those
    of ``ablation`` (so the command line's win)."""
    options: Dict[str, Overrides] = dict(ablation.stage_options
                                         if ablation else {})
    for item in items:
        stage, sep, option = item.partition(':')
        if not sep or '=' not in option or stage not in stage_keys():
            raise PipelineError(
                f'--stage-cfg-options {item!r}: expected STAGE:KEY=VALUE '
                f'with STAGE one of {", ".join(stage_keys())}')
        options[stage] = options.get(stage, Overrides()) + \
            parse_cfg_options([option], '--stage-cfg-options')
    return options


def _check_student(args: argparse.Namespace) -> None:
    """``--student``: a config for each of its stages the run has, and no
    option that only fits the recipe's student.

    Raises:
        PipelineError: naming the stage without a config, or the option.
    """
    if args.student_init != 'random':
        raise PipelineError(
            f'--student-init {args.student_init} loads the recipe\'s R-18 '
            f'backbone into every student; --student {args.student} starts '
            'from its own config\'s weights')
    stages = ['supervised_student'] + (
        ['distill', 'finetune'] if 'cast' in args.methods else []) + (
        ['guided_distillation'] if 'gd' in args.methods else [])
    for stage in stages:
        teacher = args.teacher if stage == 'distill' else None
        find_row(args.dataset, stage, teacher, args.student)


def planned_iters(args: argparse.Namespace) -> Tuple[str, ...]:
    """The :data:`~mmcast.apis.pipeline.settings.ITERS_STAGES` a run
    trains."""
    cast = 'cast' in args.methods
    pretrain = args.student_init != 'random' or cast and (
        args.dataset == 'toy' or args.dataset == 'custom-cpu' and
        not args.pretrained_teacher)
    return (('pretrain', ) if pretrain else ()) + (
        ITERS_STAGES[1:] if cast else ('distill', 'finetune'))


def _iters(args: argparse.Namespace,
           planned: Tuple[str, ...]) -> Dict[str, int]:
    """``--iters`` as ``{stage: iterations}``.

    ``STAGE=N`` items name their stage (or an alias of
    :data:`~mmcast.apis.pipeline.settings.ITERS_ALIASES`); five plain
    numbers are the former positional form, where 0 stands for a stage the
    run does not have. A stage the run does not have is an error, not
    ignored.
    """
    items = args.iters or []
    if items and all(i.lstrip('-').isdigit() for i in items):
        if len(items) != len(ITERS_STAGES):
            raise PipelineError(
                f'--iters {" ".join(items)}: give STAGE=N items (e.g. '
                '--iters distill=1600 finetune=400) or the five values '
                'of ' + ', '.join(ITERS_STAGES))
        named = {k: int(v) for k, v in zip(ITERS_STAGES, items)
                 if int(v) != 0 or k in planned}
    else:
        named = {}
        for item in items:
            name, sep, value = item.partition('=')
            name = ITERS_ALIASES.get(name, name)
            if not sep or name not in ITERS_STAGES or not value.isdigit():
                raise PipelineError(
                    f'--iters {item!r}: expected STAGE=N with STAGE one '
                    f'of {", ".join(ITERS_STAGES)} (or '
                    f'{", ".join(ITERS_ALIASES)}) and N a whole number')
            named[name] = int(value)
    for name, value in named.items():
        if name not in planned:
            raise PipelineError(
                f'--iters: this run has no {name} stage ({args.dataset}, '
                f'--methods {" ".join(args.methods)}' +
                (', --pretrained-teacher' if args.pretrained_teacher
                 else '') + '): leave it out' +
                (' (or give 0 in the positional form)'
                 if name == 'pretrain' else ''))
        if value < 1:
            raise PipelineError(f'--iters {name}={value}: at least 1')
    return named
