# Copyright (c) mmcast contributors. All rights reserved.
"""``AtomicCheckpointHook``: a checkpoint write that fails (a full disk)
leaves the checkpoints before it whole and ``last_checkpoint`` pointing at
one of them, with ``max_keep_ckpts=1`` too; MMEngine's own hook, in the
same run, leaves a truncated file under the final name and has removed the
one before it. Every shipped config uses the hook."""
import errno
import glob
import os
import os.path as osp

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from conftest import REPO_ROOT


class _Points(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict:
        return dict(inputs=torch.full((2, ), float(i)),
                    target=torch.tensor([float(i % 2)]))


class _Regressor(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, target=None, mode='tensor'):
        inputs = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.linear(inputs)
        if mode == 'loss':
            target = torch.stack(target) if isinstance(target, list) \
                else target
            return dict(loss=((out - target)**2).mean())
        return out


def _runner(work_dir: str, hook: str) -> Runner:
    return Runner(
        model=_Regressor(), work_dir=work_dir,
        train_dataloader=dict(
            dataset=_Points(), batch_size=2, num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=False),
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=3),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(
            type=hook, interval=1, by_epoch=False, max_keep_ckpts=1),
            logger=None),
        default_scope='mmengine')


def _raise_enospc():
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _half_then_enospc(real_open):
    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            _raise_enospc()

    class atomic_open:
        def __init__(self, *args, **kwargs):
            self.ctx = real_open(*args, **kwargs)

        def __enter__(self):
            return Full(self.ctx.__enter__())

        def __exit__(self, *exc):
            return self.ctx.__exit__(*exc)

    return atomic_open


@pytest.mark.parametrize('hook', ['AtomicCheckpointHook', 'CheckpointHook'])
def test_a_full_disk_during_a_checkpoint(tmp_path, monkeypatch, hook):
    import mmcast  # noqa: F401  (registers the hook)
    from mmcast.engine.hooks import atomic_checkpoint_hook as atomic
    from mmengine.fileio.backends import LocalBackend

    work_dir = str(tmp_path)
    saves = []
    real_put, real_open = LocalBackend.put, atomic.atomic_open

    def counted_put(self, obj, filepath):
        saves.append(filepath)
        if len(saves) == 3:  # the third checkpoint meets a full disk
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            _raise_enospc()
        return real_put(self, obj, filepath)

    def counted_open(path, mode='w', **kwargs):
        if path.endswith('.pth'):
            saves.append(path)
            if len(saves) == 3:
                return _half_then_enospc(real_open)(path, mode, **kwargs)
        return real_open(path, mode, **kwargs)

    monkeypatch.setattr(LocalBackend, 'put', counted_put)
    monkeypatch.setattr(atomic, 'atomic_open', counted_open)
    runner = _runner(work_dir, hook)
    with pytest.raises(OSError, match='No space left'):
        runner.train()
    names = sorted(osp.basename(p) for p in glob.glob(f'{work_dir}/*')
                   if not osp.isdir(p))
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        last = f.read()
    from mmcast.utils.checkpoint_loading import checkpoint_damage
    if hook == 'AtomicCheckpointHook':
        # nothing but whole files: iter_2 kept, no temporary left
        assert [n for n in names if n.endswith('.pth')] == ['iter_2.pth']
        assert not [n for n in names if n.startswith('.')]
        assert checkpoint_damage(osp.join(work_dir, 'iter_2.pth')) is None
        assert last == osp.join(work_dir, 'iter_2.pth')
        # and the run resumes from it
        monkeypatch.setattr(atomic, 'atomic_open', real_open)
        resumed = _runner(work_dir, hook)
        resumed._resume = True
        resumed._load_from = last
        resumed.train()
        assert resumed.iter == 3
        assert checkpoint_damage(osp.join(work_dir, 'iter_3.pth')) is None
    else:
        # MMEngine's own hook: the previous checkpoint removed before the
        # save, the new one truncated under its final name
        assert [n for n in names if n.endswith('.pth')] == ['iter_3.pth']
        assert checkpoint_damage(osp.join(work_dir, 'iter_3.pth'))


def test_every_shipped_config_writes_its_checkpoints_whole():
    """``default_hooks.checkpoint`` of every config that trains, mmcast's
    (mmdet's scope) and the projects' (SwinMTL: mmseg's) alike, is the
    atomic hook, beside ``default_hooks.random_state``."""
    from mmengine.config import Config

    checked = []
    for path in glob.glob(osp.join(REPO_ROOT, 'configs/mmcast/**/*.py'),
                          recursive=True) + glob.glob(
                              osp.join(REPO_ROOT, 'projects/*/configs/*.py')):
        if '_base_' in path or osp.basename(path) == 'custom_dataset.py':
            continue
        cfg = Config.fromfile(path)
        hook = cfg.get('default_hooks', {}).get('checkpoint')
        assert hook is not None, path
        assert hook['type'] == 'AtomicCheckpointHook', path
        # and each checkpoint holds the random states (exact resume)
        assert cfg.default_hooks.get('random_state', {}).get('type') == \
            'RandomStateHook', path
        checked.append(osp.relpath(path, REPO_ROOT))
    assert len(checked) > 100
    assert 'projects/swinmtl/configs/swinmtl_swinv2-tiny_toy.py' in checked
