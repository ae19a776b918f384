# Copyright (c) mmcast contributors. All rights reserved.
"""The learning rate of a run from its global batch, and the batches a
semi-supervised stage cannot train on.

One rule for every mmcast config, ``tools/cast_pipeline.py`` and hand runs
(``--auto-scale-lr``, :class:`~mmcast.engine.BatchScaledRunner`): a recipe
gives its lr at a global batch ``B0`` (the config's
``auto_scale_lr.base_batch_size``); at a global batch ``B`` (GPUs × images
per GPU) the lr is

    lr(B) = lr(B0) · √(B / B0)        (the square-root rule)

and the iterations stay as the recipe defines them (so the epochs follow
``B``). Every mmcast schedule is AdamW: the square-root rule is the scaling
of adaptive optimisers (Malladi et al., "On the SDEs and Scaling Rules for
Adaptive Gradient Algorithms", NeurIPS 2022); the linear rule of MMEngine's
own ``auto_scale_lr`` (Goyal et al., 2017) is the SGD one. It is also the
rule under which the two papers' recipes for the same student agree: Guided
Distillation's 1e-4 at 16 + 16 images is CAST's 5e-5 at 8.
"""
import math
from typing import List, Optional, Sequence

LR_RULE = 'square-root'


def scaled_lr(lr: float, batch: int, recipe_batch: int) -> float:
    """``lr`` of a recipe at global batch ``recipe_batch``, scaled to
    global batch ``batch`` by the square-root rule."""
    if batch < 1 or recipe_batch < 1:
        raise ValueError(f'batch sizes must be positive, got {batch} and '
                         f'{recipe_batch}')
    return lr * math.sqrt(batch / recipe_batch)


def source_slots(batch_size: int, source_ratio: Sequence[float]) -> List[int]:
    """The images of each source in a batch of MMDetection's
    ``MultiSourceSampler`` (its own arithmetic: source 0 gets what the
    others leave)."""
    slots = [int(batch_size * r / sum(source_ratio)) for r in source_ratio]
    slots[0] = batch_size - sum(slots[1:])
    return slots


def semi_batch_problem(batch_size: int,
                       source_ratio: Sequence[float]) -> Optional[str]:
    """Why a ``MultiSourceSampler`` batch of ``batch_size`` images per GPU
    cannot train a semi-supervised stage, or ``None``.

    With fewer images than sources, the sampler gives the missing slots to
    source 0 (the labeled images) without a word: the stage would train on
    labels alone.
    """
    slots = source_slots(batch_size, source_ratio)
    if min(slots) >= 1:
        return None
    ratio = ':'.join(f'{r:g}' for r in source_ratio)
    return (f'{batch_size} image(s) per GPU with MultiSourceSampler '
            f'source_ratio {ratio} gives the sources {slots} images: a '
            'source without an image is never trained on (the '
            'semi-supervised stage would train on labels alone); give at '
            f'least {_fewest_images(source_ratio)} images per GPU, i.e. '
            'fewer GPUs or a larger train_dataloader.batch_size (and '
            'train_dataloader.sampler.batch_size)')


def _fewest_images(source_ratio: Sequence[float]) -> int:
    """The smallest batch that gives every source an image."""
    batch = len(source_ratio)
    while min(source_slots(batch, source_ratio)) < 1:
        batch += 1
    return batch
