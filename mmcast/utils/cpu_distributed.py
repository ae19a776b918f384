# Copyright (c) mmcast contributors. All rights reserved.
"""Opt-in: MMEngine's ``pytorch`` launcher on CPU-only machines (gloo).

mmengine (<= 0.10.7) calls ``torch.cuda.set_device(local_rank)`` before
``init_process_group`` whatever the backend, so ``torchrun ... --launcher
pytorch`` fails on machines without a GPU ("Found no NVIDIA driver").
:func:`allow_cpu_pytorch_launcher` replaces that launcher
(``mmengine.dist.utils._init_dist_pytorch``) with one that, where CUDA is
unavailable, initialises the process group without selecting a device
(gloo instead of nccl); with CUDA it is MMEngine's own.

It is never installed by default: ``import mmcast`` installs it only when
the environment variable ``MMCAST_CPU_DIST=1`` is set (so, for a run
started by ``torchrun``, in every process that imports mmcast through the
config's ``custom_imports`` before the runner initialises the process
group)::

    MMCAST_CPU_DIST=1 torchrun --nproc_per_node=2 \\
        <mmdet>/.mim/tools/train.py CONFIG --launcher pytorch

A script that starts the process group itself can call
:func:`allow_cpu_pytorch_launcher` instead, or :func:`init_processes`,
which does so where CUDA is unavailable.
"""
import os

import torch
import torch.distributed as torch_dist
from mmengine.dist import utils as dist_utils

# The environment variable that opts in at ``import mmcast``.
CPU_DIST_ENV = 'MMCAST_CPU_DIST'

_ORIGINAL = dist_utils._init_dist_pytorch


def _init_dist_pytorch(backend: str = 'gloo', init_backend: str = 'torch',
                       **kwargs) -> None:
    """MMEngine's pytorch launcher, without ``set_device`` on a CPU machine."""
    if torch.cuda.is_available() or init_backend != 'torch':
        return _ORIGINAL(backend, init_backend=init_backend, **kwargs)
    if backend == 'nccl':
        backend = 'gloo'  # nccl needs GPUs; configs default to it
    torch_dist.init_process_group(backend=backend, **kwargs)


def cpu_launcher_requested() -> bool:
    """Whether the environment opts in (``MMCAST_CPU_DIST=1``)."""
    return os.environ.get(CPU_DIST_ENV, '') == '1'


def allow_cpu_pytorch_launcher() -> None:
    """Install the CPU-aware launcher in MMEngine (idempotent)."""
    dist_utils._init_dist_pytorch = _init_dist_pytorch


def init_processes(launcher: str, local_rank: int = 0) -> None:
    """Start the process group of a script's multi-process run: nccl on
    GPUs, gloo (through :func:`allow_cpu_pytorch_launcher`) on CPUs.

    Args:
        launcher (str): MMEngine's launcher (``'pytorch'``, ``'slurm'``,
            ``'mpi'``); ``'none'`` starts none.
        local_rank (int): ``LOCAL_RANK`` where the launcher did not set it
            (``torch.distributed.launch`` passes ``--local-rank``).
    """
    from mmengine.dist import init_dist
    os.environ.setdefault('LOCAL_RANK', str(local_rank))
    if launcher == 'none':
        return
    if not torch.cuda.is_available():
        allow_cpu_pytorch_launcher()
    init_dist(launcher,
              backend='nccl' if torch.cuda.is_available() else 'gloo')
