# Copyright (c) mmcast contributors. All rights reserved.
"""``CASTMask2FormerHead._class_id_map``: the class id of the target at each
embedding pixel, computed without a loop over the instances, equals the
per-instance painting it replaces (later targets win where they overlap)."""
from typing import List, Tuple

import pytest
import torch
from mmengine.structures import InstanceData

from mmcast.models.dense_heads.cast_mask2former_head import \
    CASTMask2FormerHead


def painted_reference(batch_gt_instances: List,
                      size: Tuple[int, int]) -> torch.Tensor:
    """One instance after the other, each painting its class over the map."""
    maps = []
    for gt in batch_gt_instances:
        ids = torch.full(size, -1, dtype=torch.long)
        if len(gt.masks):
            small = torch.nn.functional.interpolate(
                gt.masks[None].float(), size=size, mode='nearest')[0] > 0.5
            for mask, label in zip(small, gt.labels):
                ids[mask] = label
        maps.append(ids)
    return torch.stack(maps)


def random_instances(generator: torch.Generator, num: int, height: int,
                     width: int, num_classes: int = 8) -> InstanceData:
    """``num`` random rectangles (they overlap often) plus speckle, as bool
    masks (num, height, width); random labels."""
    masks = torch.rand(num, height, width, generator=generator) > 0.97
    for i in range(num):
        y0, x0 = (torch.randint(0, s - 4, (1, ), generator=generator).item()
                  for s in (height, width))
        y1 = y0 + torch.randint(4, height - y0 + 1, (1, ),
                                generator=generator).item()
        x1 = x0 + torch.randint(4, width - x0 + 1, (1, ),
                                generator=generator).item()
        masks[i, y0:y1, x0:x1] = True
    labels = torch.randint(0, num_classes, (num, ), generator=generator)
    return InstanceData(masks=masks, labels=labels)


@pytest.mark.parametrize('seed', range(6))
def test_vectorised_map_equals_the_painting_loop(seed):
    generator = torch.Generator().manual_seed(seed)
    height, width = 64, 96
    batch = [
        random_instances(generator, num, height, width)
        for num in (0, 1, 5, 12)
    ]
    overlaps = sum(
        int((gt.masks.sum(0) > 1).sum()) for gt in batch if len(gt.masks))
    assert overlaps > 0  # the precedence is exercised
    for size in ((8, 12), (16, 24), (64, 96), (5, 7)):
        got = CASTMask2FormerHead._class_id_map(batch, size)
        expected = painted_reference(batch, size)
        assert got.dtype == torch.long and got.shape == (4, *size)
        assert torch.equal(got, expected)
        assert (got[0] == -1).all()  # no target: all background


def test_later_target_wins_where_targets_overlap():
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[0, :, :3] = True
    masks[1, :2, 1:] = True
    masks[2, 3, 3] = True
    gt = InstanceData(masks=masks, labels=torch.tensor([5, 2, 7]))
    got = CASTMask2FormerHead._class_id_map([gt], (4, 4))[0]
    assert got.tolist() == [[5, 2, 2, 2],
                            [5, 2, 2, 2],
                            [5, 5, 5, -1],
                            [5, 5, 5, 7]]
