# Copyright (c) mmcast contributors. All rights reserved.
"""Let MMEngine's ``pytorch`` launcher start gloo process groups on CPU.

mmengine (<= 0.10.7) calls ``torch.cuda.set_device(local_rank)`` before
``init_process_group`` whatever the backend, so ``torchrun ... --launcher
pytorch`` fails on machines without a GPU ("Found no NVIDIA driver"). Where
CUDA is unavailable, :func:`allow_cpu_pytorch_launcher` makes that launcher
initialise the process group without selecting a device; with CUDA nothing
changes.
"""
import torch
import torch.distributed as torch_dist
from mmengine.dist import utils as dist_utils

_ORIGINAL = dist_utils._init_dist_pytorch


def _init_dist_pytorch(backend: str = 'gloo', init_backend: str = 'torch',
                       **kwargs) -> None:
    """MMEngine's pytorch launcher, without ``set_device`` on a CPU machine."""
    if torch.cuda.is_available() or init_backend != 'torch':
        return _ORIGINAL(backend, init_backend=init_backend, **kwargs)
    if backend == 'nccl':
        backend = 'gloo'  # nccl needs GPUs; configs default to it
    torch_dist.init_process_group(backend=backend, **kwargs)


def allow_cpu_pytorch_launcher() -> None:
    """Install the CPU-aware launcher (idempotent)."""
    dist_utils._init_dist_pytorch = _init_dist_pytorch
