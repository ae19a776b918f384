# Copyright (c) mmcast contributors. All rights reserved.
"""How a stage is launched: one process, ``torchrun`` on one or several
nodes, or Slurm's ``srun``.

:func:`stage_command` composes the command that trains or tests one stage
config with MMDetection's own ``tools/train.py`` / ``tools/test.py`` and
MMEngine's launchers, as ``tools/dist_train.sh`` / ``tools/slurm_train.sh``
do:

* ``none``: ``python train.py CONFIG --launcher none`` (one process): the
  command ``mim train mmdet CONFIG`` runs, without ``mim`` itself, which
  first starts ``train.py -h`` to read its options (5-7 processor-seconds of
  imports a training stage: a quarter to a third of what a stage of a few
  iterations costs on a CPU);
* ``pytorch``: ``python -m torch.distributed.run --nnodes N --node_rank R
  --master_addr A --master_port P --nproc_per_node G train.py CONFIG
  --launcher pytorch`` — run on every node with its own ``node_rank``;
* ``slurm``: ``srun -p PARTITION --job-name NAME --gres=gpu:G --ntasks N·G
  --ntasks-per-node G --cpus-per-task C --kill-on-bad-exit=1 [SRUN_ARGS]
  python -u train.py CONFIG --launcher slurm`` — from a login node; Slurm
  places the processes, MMEngine reads the ranks from Slurm's environment.

Every rank of every node takes part in a stage, its pseudo-labelling
included (the labeller shards the unlabeled images over the world size).

A stage's :class:`~mmcast.apis.pipeline.overrides.Overrides` become
``--cfg-options KEY=VALUE`` strings here and only here
(:func:`cfg_options_args`), and the command line's ``--cfg-options`` strings
become overrides here (:func:`parse_cfg_options`), both in the syntax of
MMEngine's ``DictAction``.
"""
import os.path as osp
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, List

from .errors import PipelineError
from .overrides import Overrides

LAUNCHERS = ('none', 'pytorch', 'slurm')
STAGE_STARTS = ('fork', 'fresh')


@dataclass
class LaunchConfig:
    """Where and how the stages run.

    Args:
        launcher (str): ``none``, ``pytorch`` or ``slurm``.
        nproc (int): Processes (GPUs) per node.
        nnodes (int): Nodes (``pytorch``: torchrun's ``--nnodes``;
            ``slurm``: the job's nodes, ``--ntasks = nnodes × nproc``).
        node_rank (int): This node's rank (``pytorch``).
        master_addr (str): Rank 0's address (``pytorch``).
        master_port (int): Rank 0's port (``pytorch``).
        partition (str): Slurm partition (``slurm``).
        cpus_per_task (int): Slurm ``--cpus-per-task``.
        srun_args (list[str]): Further ``srun`` arguments.
        stage_start (str): ``fork``: a stage of ``none`` on the CPU starts
            as a fork of a process that imported the stack once
            (:mod:`~mmcast.apis.pipeline.stage_forkserver`); ``fresh``:
            as a new Python process, as every other stage.
    """
    launcher: str = 'none'
    nproc: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = '127.0.0.1'
    master_port: int = 29500
    partition: str = ''
    cpus_per_task: int = 5
    srun_args: List[str] = field(default_factory=list)
    stage_start: str = 'fork'

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ValueError(f'launcher must be one of {LAUNCHERS}, got '
                             f'{self.launcher!r}')
        if self.stage_start not in STAGE_STARTS:
            raise ValueError(f'stage_start must be one of {STAGE_STARTS}, '
                             f'got {self.stage_start!r}')
        if self.nproc < 1 or self.nnodes < 1:
            raise ValueError(f'nproc ({self.nproc}) and nnodes '
                             f'({self.nnodes}) must be >= 1')
        if not 0 <= self.node_rank < self.nnodes:
            raise ValueError(f'node_rank {self.node_rank} must be in '
                             f'[0, {self.nnodes})')
        if self.launcher == 'none' and self.nproc * self.nnodes > 1:
            raise ValueError('several processes need --launcher pytorch or '
                             'slurm')
        if self.launcher == 'slurm' and not self.partition:
            raise ValueError('--launcher slurm needs --partition')

    @property
    def world_size(self) -> int:
        """Processes of a stage over all nodes."""
        return self.nproc * self.nnodes

    @property
    def leads(self) -> bool:
        """Whether this process writes the pipeline's records (node 0; the
        other nodes of a ``pytorch`` run only join the stages)."""
        return self.node_rank == 0


def stock_script(mode: str) -> str:
    """MMDetection's own ``tools/train.py`` or ``tools/test.py``."""
    import mmdet
    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools',
                    f'{mode}.py')


def stage_command(mode: str, config: str, work_dir: str, extra: List[str],
                  launch: LaunchConfig, job_name: str = 'mmcast') -> List[str]:
    """The command that runs ``mode`` (``train`` / ``test``) of ``config``.

    Args:
        mode (str): ``train`` or ``test``.
        config (str): The stage config.
        work_dir (str): The stage's work dir.
        extra (list[str]): Further arguments of MMDetection's script (e.g.
            ``--resume``, ``--checkpoint``, ``--cfg-options ...``).
        launch (LaunchConfig): How to launch it.
        job_name (str): Slurm job name.

    Returns:
        list[str]: The command (``shlex.join`` prints it).
    """
    # MMDetection's test.py takes the checkpoint after the config
    script = [stock_script(mode), config] + _positional_checkpoint(extra)
    extra = _without_checkpoint(extra)
    if launch.launcher == 'none':  # as mim train / mim test compose it
        return [sys.executable] + script + [
            '--launcher', 'none', '--work-dir', work_dir] + extra
    if launch.launcher == 'pytorch':
        return [
            sys.executable, '-m', 'torch.distributed.run',
            f'--nnodes={launch.nnodes}', f'--node_rank={launch.node_rank}',
            f'--master_addr={launch.master_addr}',
            f'--master_port={launch.master_port}',
            f'--nproc_per_node={launch.nproc}'
        ] + script + extra + ['--launcher', 'pytorch', '--work-dir', work_dir]
    return [
        'srun', '-p', launch.partition, f'--job-name={job_name}',
        f'--gres=gpu:{launch.nproc}', f'--ntasks={launch.world_size}',
        f'--ntasks-per-node={launch.nproc}',
        f'--cpus-per-task={launch.cpus_per_task}', '--kill-on-bad-exit=1'
    ] + list(launch.srun_args) + [sys.executable, '-u'] + script + extra + [
        '--launcher', 'slurm', '--work-dir', work_dir]


def _positional_checkpoint(extra: List[str]) -> List[str]:
    """``[X]`` of ``--checkpoint X`` (``mim test``'s option), MMDetection's
    positional ``test.py CONFIG CHECKPOINT``; ``[]`` without one."""
    if '--checkpoint' not in extra:
        return []
    return [extra[extra.index('--checkpoint') + 1]]


def _without_checkpoint(extra: List[str]) -> List[str]:
    """``extra`` without ``--checkpoint X``."""
    if '--checkpoint' not in extra:
        return extra
    i = extra.index('--checkpoint')
    return extra[:i] + extra[i + 2:]


def printable(cmd: List[str]) -> str:
    """The command as a shell line."""
    return shlex.join(cmd)


def option_text(value: Any) -> str:
    """``value`` in ``DictAction``'s syntax: ``None``, ``True``, ``1600``,
    ``5e-05``, ``[a,b]``, ``(1,10,100)``, a string as it is."""
    if isinstance(value, list):
        return '[' + ','.join(option_text(v) for v in value) + ']'
    if isinstance(value, tuple):
        return '(' + ','.join(option_text(v) for v in value) + ')'
    if isinstance(value, float):
        return repr(value)
    return str(value)


def read_option_value(text: str, where: str) -> Any:
    """``text`` as MMDetection's scripts read a ``--cfg-options`` value
    (MMEngine's ``DictAction``).

    Raises:
        PipelineError: Text it cannot read (unbalanced brackets), naming
            ``where`` (the option or key).
    """
    from mmengine.config import DictAction

    try:
        return DictAction._parse_iterable(text)
    except AssertionError:  # DictAction asserts balanced brackets
        raise PipelineError(f'{where}: unbalanced brackets in {text!r}')


def cfg_options_args(overrides: Overrides) -> List[str]:
    """The ``KEY=VALUE`` strings of ``--cfg-options`` that MMDetection's
    scripts parse back into ``overrides``.

    Raises:
        PipelineError: A value that ``--cfg-options`` cannot carry (a string
            with a space, a comma or brackets, or one that reads as a
            number, a bool or None), naming its key.
    """
    args = []
    for key, value in overrides:
        text = option_text(value)
        read = read_option_value(text, key)
        if read != value:
            raise PipelineError(
                f'{key}={value!r}: --cfg-options cannot carry this value to '
                f'the stage (it would read {text!r} as {read!r}); choose a '
                'path or name without spaces, commas or brackets')
        args.append(f'{key}={text}')
    return args


def parse_cfg_options(items: Iterable[str], option: str) -> Overrides:
    """``KEY=VALUE`` strings of the command line (``option`` names it in
    errors) → overrides, each value read as MMEngine's ``DictAction`` reads
    it.

    Raises:
        PipelineError: An item without ``=``, or a value with unbalanced
            brackets.
    """
    pairs = []
    for item in items:
        key, sep, text = item.partition('=')
        if not sep or not key:
            raise PipelineError(f'{option} {item!r}: expected KEY=VALUE')
        pairs.append((key, read_option_value(text, f'{option} {item!r}')))
    return Overrides.of(pairs)
