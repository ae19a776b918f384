# Copyright (c) mmcast contributors. All rights reserved.
"""Two ranks draw different strong views of the same images.

Two processes (``torch.multiprocessing.spawn``) build the same
``PhotometricStrongView`` (same seed: MMEngine's default
``diff_rank_seed=False`` gives every rank the seed) and augment the same
batch on CUDA; the views are gathered over NCCL (one GPU per rank). On a
machine with a single GPU both ranks share it and gather over Gloo: NCCL
refuses two ranks on one device.
"""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import mmcast  # noqa: F401
from mmcast.models.layers import PhotometricStrongView

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
BATCH = 2
WORLD_SIZE = 2


def make_view(device: torch.device) -> PhotometricStrongView:
    """Every image jittered and blurred; the same seed on every rank; its
    mean / std buffers on ``device``."""
    return PhotometricStrongView(
        mean=MEAN, std=STD, jitter_prob=1.0, gray_prob=0.0, blur_prob=1.0,
        seed=0).to(device)


def make_inputs(device: torch.device) -> torch.Tensor:
    """The same normalised (BATCH, 3, 32, 48) batch on every rank."""
    images = torch.rand(BATCH, 3, 32, 48,
                        generator=torch.Generator().manual_seed(0))
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return ((images * 255 - mean) / std).to(device)


def backend() -> str:
    return 'nccl' if torch.cuda.device_count() >= WORLD_SIZE else 'gloo'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, out_file: str) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    device = torch.device('cuda', rank % torch.cuda.device_count())
    torch.cuda.set_device(device)
    dist.init_process_group(backend(), rank=rank, world_size=WORLD_SIZE)
    try:
        view = make_view(device)(make_inputs(device))
        # NCCL gathers device tensors; Gloo host copies
        comm = view if backend() == 'nccl' else view.cpu()
        gathered = [torch.empty_like(comm) for _ in range(WORLD_SIZE)]
        dist.all_gather(gathered, comm)
        if rank == 0:
            torch.save(dict(views=[t.cpu() for t in gathered],
                            device=view.device.type), out_file)
    finally:
        dist.destroy_process_group()


def test_two_ranks_draw_different_views(tmp_path):
    out_file = str(tmp_path / 'views.pt')
    mp.spawn(_worker, args=(_free_port(), out_file), nprocs=WORLD_SIZE,
             join=True)
    result = torch.load(out_file)
    assert result['device'] == 'cuda'
    rank0, rank1 = result['views']
    inputs = make_inputs(torch.device('cpu'))
    for b in range(BATCH):
        assert torch.isfinite(rank0[b]).all() and torch.isfinite(
            rank1[b]).all()
        assert not torch.allclose(rank0[b], inputs[b], atol=1e-3)
        # the same image, the same seed: another view on the other rank
        assert (rank0[b] - rank1[b]).abs().max() > 0.1, b
    # image g = rank * BATCH + b draws as in one process holding the whole
    # global batch (up to the blur's TF32 convolution)
    cuda = torch.device('cuda')
    single = make_view(cuda)(make_inputs(cuda).repeat(2, 1, 1, 1))
    torch.testing.assert_close(single.cpu(), torch.cat([rank0, rank1]),
                               rtol=0, atol=1e-2)
