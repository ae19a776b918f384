# Copyright (c) mmcast contributors. All rights reserved.
"""Where L_pxl draws its negatives: the whole batch in the real-size configs.

The real-size stages train on several GPUs with 2 images each; CAST's
negatives come from "the other images of the batch", so their
``InstanceAwarePixelContrastLoss`` gathers every process's images
(``negatives_from='global'``). The toy and CPU configs run in one process
and keep the loss default (``'local'``).
"""
import glob
import os.path as osp
from functools import lru_cache
from typing import Iterator, List, Tuple

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT

REAL_SIZE = [
    f'configs/mmcast/{stage}_{ds}.py'
    for stage in ('adapt_teacher', 'adapt_teacher_selftrain', 'distill')
    for ds in ('cityscapes', 'ade20k', 'coco')
] + [
    f'configs/mmcast/distill_{ds}_dinov3-{variant}.py'
    for ds in ('cityscapes', 'ade20k', 'coco') for variant in ('s', 'splus')
] + [
    # the EoMT student, L_pxl on its patch tokens
    'configs/mmcast/distill_cityscapes_eomt-dinov3-s.py',
] + [
    f'configs/mmcast/custom/{stage}_custom.py'
    for stage in ('adapt_teacher', 'adapt_teacher_selftrain', 'distill')
]
ONE_PROCESS = [
    'configs/mmcast/adapt_teacher_toy.py',
    'configs/mmcast/adapt_teacher_selftrain_toy.py',
    'configs/mmcast/distill_toy.py',
    'configs/mmcast/distill_toy_gdino-sam2.py',
    'configs/mmcast/distill_toy_sam3.py',
    'configs/mmcast/toy/cast_mask2former_r18_1xb4-1500it_toy.py',
    'configs/mmcast/toy/cast-distill_eomt-dinov3-tiny_1xb4-1600it_toy-semi-10p.py',
    'configs/mmcast/toy/cast-distill_dinov3-tiny-dpt_1xb4-1600it_toy-semi-10p.py',
    'configs/mmcast/custom/adapt_teacher_custom-cpu.py',
    'configs/mmcast/custom/adapt_teacher_selftrain_custom-cpu.py',
    'configs/mmcast/custom/distill_custom-cpu.py',
]
STAGE_DIRS = ('configs/mmcast', 'configs/mmcast/custom', 'configs/mmcast/toy',
              'configs/mmcast/guided_distillation', 'configs/mmcast/teachers')


@lru_cache(maxsize=None)
def load(path: str) -> Config:
    return Config.fromfile(osp.join(REPO_ROOT, path))


def pixel_contrast_losses(node, where: str = 'model') -> Iterator[
        Tuple[str, dict]]:
    """``(path, config)`` of every ``loss_pixel_contrast`` that is on."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f'{where}.{key}'
            if key == 'loss_pixel_contrast':
                if value is not None:
                    yield path, value
            else:
                yield from pixel_contrast_losses(value, path)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from pixel_contrast_losses(value, f'{where}.{i}')


def built_losses(path: str) -> List[Tuple[str, object]]:
    from mmdet.registry import MODELS

    import mmcast  # noqa: F401  (registers the loss)
    return [(where, MODELS.build(dict(cfg)))
            for where, cfg in pixel_contrast_losses(load(path).model)]


@pytest.mark.parametrize('path', REAL_SIZE)
def test_real_size_stage_draws_negatives_from_the_global_batch(path):
    losses = built_losses(path)
    assert len(losses) == 1, (path, losses)
    where, loss = losses[0]
    assert type(loss).__name__ == 'InstanceAwarePixelContrastLoss'
    assert loss.negatives_from == 'global', (path, where)
    assert loss.cross_image and loss.num_negatives == 200, (path, where)


@pytest.mark.parametrize('path', ONE_PROCESS)
def test_one_process_configs_keep_local_negatives(path):
    losses = built_losses(path)
    assert len(losses) == 1, (path, losses)
    assert losses[0][1].negatives_from == 'local', path


def test_every_config_with_the_loss_is_listed():
    """A config that trains L_pxl is either real-size or one-process."""
    found = set()
    for folder in STAGE_DIRS:
        for file in glob.glob(osp.join(REPO_ROOT, folder, '*.py')):
            path = osp.relpath(file, REPO_ROOT)
            if 'model' in load(path) and any(
                    pixel_contrast_losses(load(path).model)):
                found.add(path)
    assert found == set(REAL_SIZE) | set(ONE_PROCESS)
