# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/benchmark/stage_overhead.py`` on CPU.

Real training steps of the three toy models at 32x64, timed by a clock that
each model's ``train_step`` advances by a known amount: the printed times
and ratios must be those, each row must time its own model (a supervised
``Mask2Former`` with the stage's head minus L_pxl, the ``CASTDistiller``,
the ``GuidedDistiller``), and the semi-supervised batch is mixed as the
config's sampler mixes it.
"""
import os.path as osp
import sys
import types

from conftest import REPO_ROOT, load_script
from mmcast.models.dense_heads import FP32LossMask2FormerHead

#: seconds each model's step advances the clock by
STEP_SECONDS = {'Mask2Former': 1.0, 'CASTDistiller': 1.3,
                'GuidedDistiller': 2.0}


def test_each_row_times_its_own_model(monkeypatch, capsys):
    bench = load_script(
        osp.join(REPO_ROOT, 'tools', 'benchmark', 'stage_overhead.py'))
    clock = [0.0]
    built, batches = [], {}
    build = bench.MODELS.build

    depth = [0]

    def building(cfg, *args, **kwargs):
        depth[0] += 1
        try:
            model = build(cfg, *args, **kwargs)
        finally:
            depth[0] -= 1
        if depth[0]:  # a part of the model being built
            return model
        name = type(model).__name__
        step = model.train_step

        def timed_step(data, optim_wrapper):
            batches[name] = data
            out = step(data, optim_wrapper)
            clock[0] += STEP_SECONDS[name]
            return out

        model.train_step = timed_step
        built.append(model)
        return model

    monkeypatch.setattr(bench.MODELS, 'build', building)
    monkeypatch.setattr(bench, 'time',
                        types.SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setattr(sys, 'argv', [
        'stage_overhead.py', '--batch-size', '4', '--shape', '32', '64',
        '--repeats', '1', '--warmup', '0'])
    bench.main()
    out = capsys.readouterr().out

    assert [type(m).__name__ for m in built] == [
        'Mask2Former', 'CASTDistiller', 'GuidedDistiller']
    head = built[0].panoptic_head
    assert isinstance(head, FP32LossMask2FormerHead)
    assert not hasattr(head, 'projection_head')
    assert built[1].student.panoptic_head.with_pixel_contrast
    # distill_toy.py's sampler: 1 labeled + 3 pseudo-labeled of 4
    assert len(batches['Mask2Former']['inputs']) == 4
    for name in ('CASTDistiller', 'GuidedDistiller'):
        inputs = batches[name]['inputs']
        assert (len(inputs['sup']), len(inputs['unsup'])) == (1, 3), name
    assert '| supervised (stock Mask2Former, 4 labeled) | 1.000 |' in out
    assert ('| CAST stage 2 (1 labeled + 3 pseudo-labeled, L_pxl) | 1.300 |'
            in out)
    assert '| 2.000 |' in out
    assert 'stage-2 / supervised = 1.30x' in out
    assert 'Guided Distillation / supervised = 2.00x' in out
