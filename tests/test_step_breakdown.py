# Copyright (c) mmcast contributors. All rights reserved.
"""tools/benchmark/step_breakdown.py on the toy's steps: every part of the
stage-2 step is measured, and no step runs a Python loop over the
instances (its operator count does not grow with them; a planted loop
does)."""
import os.path as osp
import sys

import pytest
import torch

from conftest import REPO_ROOT
from mmcast.models.dense_heads.cast_mask2former_head import \
    CASTMask2FormerHead

sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'benchmark'))
import step_breakdown  # noqa: E402

FEW, MANY, IMAGES = 2, 12, 4
ARGS = ['--config', 'toy', '--device', 'cpu', '--shape', '64', '128',
        '--batch-size', str(IMAGES), '--instances', str(FEW), str(MANY),
        '--repeats', '1', '--warmup', '0']


def _growth(result: dict) -> int:
    few, many = result['ops']
    return many - few


@pytest.fixture(scope='module')
def breakdown():
    torch.manual_seed(0)
    return step_breakdown.run(step_breakdown.parse_args(ARGS))


def test_no_step_loops_over_the_instances_in_python(breakdown):
    extra = (MANY - FEW) * IMAGES
    assert set(step_breakdown.STEPS) <= set(breakdown)
    for name in step_breakdown.STEPS:
        # a loop issuing even one operator per instance would add `extra`
        assert _growth(breakdown[name]) < extra, (name, breakdown[name])


def test_every_part_of_the_stage_2_step_is_measured(breakdown):
    parts = breakdown['stage 2']['parts_ms']
    assert set(step_breakdown.PART_NAMES) - set(parts) == {'teacher forward'}
    for name, ms in parts.items():
        assert 0 < ms <= parts['step'] + 1e-6, name
    assert 'teacher forward' in breakdown['guided distillation']['parts_ms']
    assert 'strong view' not in breakdown['supervised']['parts_ms']
    table = step_breakdown.format_report(breakdown)
    assert '| L_pxl sampling + loss | — |' in table
    assert 'per extra instance' in table


def test_a_loop_over_the_instances_is_seen(monkeypatch):
    """The same count catches a per-instance loop planted in stage 2's
    class-id map of L_pxl."""
    original = CASTMask2FormerHead._class_id_map

    def looping(batch_gt_instances, size):
        for gt in batch_gt_instances:
            for mask in gt.masks:
                mask.float().sum()
        return original(batch_gt_instances, size)

    monkeypatch.setattr(CASTMask2FormerHead, '_class_id_map',
                        staticmethod(looping))
    args = step_breakdown.parse_args(ARGS + ['--steps', 'stage 2'])
    result = step_breakdown.run(args)
    assert _growth(result['stage 2']) >= (MANY - FEW) * IMAGES
