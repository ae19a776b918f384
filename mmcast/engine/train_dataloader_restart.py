# Copyright (c) mmcast contributors. All rights reserved.
"""A fresh train DataLoader for the train loop after its dataset changed.

MMEngine's ``IterBasedTrainLoop`` calls ``iter(dataloader)`` in its
constructor, before any hook: worker processes (if any) then hold copies of
the dataset as it was. A hook that changes the dataset in place (e.g. loads
new pseudo-labels in ``before_train``) hands the loop a new DataLoader of
the same dataset and a new iterator of it, through the loop's public
``dataloader`` and ``dataloader_iterator`` attributes.
"""
from torch.utils.data import DataLoader


def rebuild_dataloader(dataloader: DataLoader) -> DataLoader:
    """A new DataLoader with the dataset, sampler (or batch sampler),
    collate function and worker settings of ``dataloader``; no iterator,
    so no worker started yet.

    The sampler objects are the same ones, so a new iterator draws the
    indices a new iterator of ``dataloader`` would draw.
    (``Runner.build_dataloader`` would need the loader's config, which the
    runner keeps privately, and would build new samplers.)
    """
    if dataloader.batch_size is None and dataloader.batch_sampler is not None:
        batching = dict(batch_sampler=dataloader.batch_sampler)
    else:
        batching = dict(batch_size=dataloader.batch_size,
                        sampler=dataloader.sampler,
                        drop_last=dataloader.drop_last)
    return DataLoader(
        dataloader.dataset,
        num_workers=dataloader.num_workers,
        collate_fn=dataloader.collate_fn,
        pin_memory=dataloader.pin_memory,
        timeout=dataloader.timeout,
        worker_init_fn=dataloader.worker_init_fn,
        multiprocessing_context=dataloader.multiprocessing_context,
        generator=dataloader.generator,
        prefetch_factor=dataloader.prefetch_factor,
        persistent_workers=dataloader.persistent_workers,
        pin_memory_device=dataloader.pin_memory_device,
        in_order=dataloader.in_order,
        **batching)


def restart_train_dataloader(runner) -> None:
    """Make the train loop fetch from a fresh DataLoader of its dataset.

    The loop gets a new DataLoader (:func:`rebuild_dataloader`) and a new
    iterator of it, of the old iterator's type (``IterBasedTrainLoop``'s
    infinite iterator); the loop still skips the iterations of a resumed
    run after ``before_train``. Loops without an iterator of their own
    (``EpochBasedTrainLoop``) only get the new DataLoader.

    The samplers are shared, and the new iterator is made (with worker
    processes, it prefetches from them) before the old DataLoader and
    iterator are dropped. Once nothing refers to an old DataLoader iterator
    (the old DataLoader holds the one of persistent workers), PyTorch shuts
    its worker processes down, so no old worker outlives this call.

    Note:
        Dropping an old iterator also closes the generator its sampler
        iteration was suspended in. MMEngine's ``InfiniteSampler`` iterates
        one shared generator (``yield from self.indices``), which is then
        closed too: with worker processes the new iterator only gets the
        batches it prefetched before. Samplers that make their generators
        per iteration (``DefaultSampler``) or loop over them with ``for``
        (MMDetection's ``MultiSourceSampler``) are not affected; that
        combination is refused with a message naming the setting.
    """
    loop = runner.train_loop
    old = loop.dataloader
    if type(old.sampler).__name__ == 'InfiniteSampler' and old.num_workers:
        raise ValueError(
            'train_dataloader: the pseudo-labels are reloaded before '
            'training, which ends the shared index stream of InfiniteSampler '
            f'with num_workers={old.num_workers}; use num_workers=0, '
            'DefaultSampler or (semi-supervised) MultiSourceSampler')
    dataloader = rebuild_dataloader(old)
    if getattr(loop, 'dataloader_iterator', None) is not None:
        loop.dataloader_iterator = type(loop.dataloader_iterator)(dataloader)
    loop.dataloader = dataloader
