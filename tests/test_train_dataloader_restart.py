# Copyright (c) mmcast contributors. All rights reserved.
"""A fresh train DataLoader after the dataset changed: new data, no old
worker left, the same samplers and index stream."""
import itertools
import multiprocessing
import weakref
from types import SimpleNamespace

import pytest
import torch
from mmengine.dataset import DefaultSampler
from mmengine.runner.loops import IterBasedTrainLoop
from torch.utils.data import BatchSampler, ConcatDataset, DataLoader, Dataset

from mmcast.engine.train_dataloader_restart import (rebuild_dataloader,
                                                    restart_train_dataloader)


class Values(Dataset):
    """``values[i]`` at index ``i``; changed in place like a reload."""

    def __init__(self, values):
        self.values = list(values)

    def __len__(self):
        return len(self.values)

    def __getitem__(self, idx):
        return self.values[idx]


def _worker_pids() -> set:
    return {p.pid for p in multiprocessing.active_children()}


def _loop(dataloader: DataLoader) -> IterBasedTrainLoop:
    runner = SimpleNamespace(visualizer=SimpleNamespace())
    return IterBasedTrainLoop(runner, dataloader, max_iters=10)


@pytest.mark.parametrize('persistent', [False, True])
def test_old_workers_stop_and_the_next_batch_is_the_new_data(persistent):
    data = Values(range(8))
    sampler = DefaultSampler(data, shuffle=False, seed=0)
    before = _worker_pids()
    loop = _loop(DataLoader(data, batch_size=2, sampler=sampler,
                            num_workers=2, persistent_workers=persistent))
    assert next(loop.dataloader_iterator).tolist() == [0, 1]
    old_workers = _worker_pids() - before
    assert len(old_workers) == 2  # their copies of the dataset are old
    old_loader = weakref.ref(loop.dataloader)

    data.values = [10 * v for v in range(8)]  # the reload
    restart_train_dataloader(SimpleNamespace(train_loop=loop))

    assert not old_workers & _worker_pids()
    assert old_loader() is None
    assert loop.dataloader.dataset is data
    assert loop.dataloader.sampler is sampler
    # a new iterator: the sampler from its start, the data as reloaded
    assert [next(loop.dataloader_iterator).tolist()
            for _ in range(2)] == [[0, 10], [20, 30]]
    assert len(_worker_pids() - before) == 2


def test_the_index_stream_and_the_random_draws_are_a_new_iterators():
    data = Values(range(10))
    sampler = DefaultSampler(data, shuffle=True, seed=3)
    loader = DataLoader(data, batch_size=3, sampler=sampler, drop_last=True)
    loop = _loop(loader)
    torch.manual_seed(0)
    restart_train_dataloader(SimpleNamespace(train_loop=loop))
    got = [next(loop.dataloader_iterator).tolist() for _ in range(3)]
    after = torch.rand(1)

    torch.manual_seed(0)
    expected = [batch.tolist() for batch in iter(loader)]
    assert got == expected and len(expected) == 3
    assert torch.equal(after, torch.rand(1))


@pytest.mark.parametrize('persistent', [False, True])
def test_a_stateful_sampler_continues_after_the_prefetched_batches(
        persistent):
    """MMDetection's MultiSourceSampler (the semi-supervised stages' one)
    keeps its index generators: the new iterator goes on after the batches
    the old workers had prefetched, as a new iterator of the old DataLoader
    would."""
    from mmdet.datasets.samplers import MultiSourceSampler

    def sampler():
        return MultiSourceSampler(data, batch_size=4, source_ratio=[1, 1],
                                  seed=3)

    data = ConcatDataset([Values(range(10)), Values(range(100, 117))])
    loop = _loop(DataLoader(data, batch_size=4, sampler=sampler(),
                            num_workers=2, persistent_workers=persistent))
    restart_train_dataloader(SimpleNamespace(train_loop=loop))
    expected = list(itertools.islice(
        BatchSampler(sampler(), batch_size=4, drop_last=False), 6))
    # 2 workers x prefetch_factor 2: batches 0-3 went to the old workers
    got = [sorted(next(loop.dataloader_iterator).tolist()) for _ in range(2)]
    want = [sorted(data[i] for i in batch) for batch in expected[4:6]]
    assert got == want


def test_a_batch_sampler_and_the_worker_settings_are_kept():
    data = Values(range(6))
    batch_sampler = BatchSampler(DefaultSampler(data, shuffle=False),
                                 batch_size=4, drop_last=False)

    def collate(batch):
        return sum(batch)

    old = DataLoader(data, batch_sampler=batch_sampler, collate_fn=collate,
                     num_workers=1, persistent_workers=True,
                     prefetch_factor=3, timeout=30.0,
                     generator=torch.Generator())
    new = rebuild_dataloader(old)
    assert new.batch_sampler is batch_sampler and new.batch_size is None
    for name in ('dataset', 'collate_fn', 'num_workers', 'persistent_workers',
                 'prefetch_factor', 'timeout', 'generator', 'in_order',
                 'pin_memory', 'worker_init_fn'):
        assert getattr(new, name) is getattr(old, name), name
    assert list(new) == [0 + 1 + 2 + 3, 4 + 5]


def test_a_loop_without_an_iterator_only_gets_the_new_dataloader():
    data = Values(range(4))
    old = DataLoader(data, batch_size=None)  # no batching at all
    loop = SimpleNamespace(dataloader=old)
    restart_train_dataloader(SimpleNamespace(train_loop=loop))
    assert loop.dataloader is not old
    assert loop.dataloader.batch_size is None
    assert list(loop.dataloader) == [0, 1, 2, 3]
    assert not hasattr(loop, 'dataloader_iterator')


def test_hook_relabels_and_leaves_no_old_worker(tmp_path, monkeypatch):
    """With two persistent workers started before ``before_train``, the
    PseudoLabelHook's relabelling leaves none of them, and the student's
    first batches carry the pseudo-labels."""
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    from test_pseudo_labels import (CLASSES, FakeTeacher, labeling_cfg,
                                    make_data)

    monkeypatch.setenv('MMCAST_CACHE_DIR', str(tmp_path / 'cache'))
    make_data(str(tmp_path), num=4)
    seen = {}

    class Probe(Hook):

        def __init__(self, priority: str, key: str):
            self.priority, self.key = priority, key

        def before_train(self, runner):
            seen[self.key] = (_worker_pids(),
                              weakref.ref(runner.train_loop.dataloader))

    class Student(BaseModel):

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.teacher = FakeTeacher()

        def forward(self, inputs, data_samples=None, mode='tensor'):
            seen.setdefault('instances', []).extend(
                len(s.gt_instances) for s in data_samples)
            return dict(loss=(self.w * 0).sum())

    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                dict(type='PackDetInputs')]
    runner = Runner(
        model=Student(),
        work_dir=str(tmp_path / 'work'),
        train_dataloader=dict(
            batch_size=2, num_workers=2, persistent_workers=True,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate'),
            dataset=dict(
                type='PseudoLabeledDataset', data_root=str(tmp_path),
                ann_file='pl/pseudo.json', unlabeled_ann_file='u.json',
                data_prefix=dict(img='img/'), metainfo=dict(classes=CLASSES),
                pipeline=pipeline)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.0)),
        default_hooks=dict(checkpoint=None, logger=None),
        custom_hooks=[
            dict(type='PseudoLabelHook', unlabeled_dataset=labeling_cfg(
                tmp_path), filter_cfg=dict(score_thr=0.3)),
            Probe('HIGHEST', 'before'), Probe('HIGH', 'after')
        ],
        default_scope='mmdet')
    runner.train()

    (old_workers, old_loader), (workers, loader) = seen['before'], \
        seen['after']
    assert len(old_workers) == 2 and not old_workers & workers
    assert old_loader() is None and loader() is runner.train_dataloader
    assert runner.train_dataloader.dataset.pseudo_labels_loaded
    assert seen['instances'] == [2, 2, 2, 2]  # none without pseudo-labels


def test_infinite_sampler_with_workers_is_refused():
    """InfiniteSampler shares one index generator across iterators: with
    workers the restarted stream would end; the setting is named."""
    from mmengine.dataset import InfiniteSampler
    data = Values(range(8))
    workers = DataLoader(data, batch_size=2, num_workers=1,
                         sampler=InfiniteSampler(data, seed=0))
    with pytest.raises(ValueError, match='num_workers=1'):
        restart_train_dataloader(SimpleNamespace(
            train_loop=SimpleNamespace(dataloader=workers)))
    in_process = DataLoader(data, batch_size=2, num_workers=0,
                            sampler=InfiniteSampler(data, seed=0))
    loop = SimpleNamespace(dataloader=in_process)
    restart_train_dataloader(SimpleNamespace(train_loop=loop))
    assert loop.dataloader is not in_process
