# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/benchmark/real_size_step.py`` on CPU at reduced size.

The benchmark is meant for a GPU (the configs' crop, AMP); here it runs
every section on 64×128 images with 10 queries to show that the real-size
models it builds are the ones the configs train (parameter counts), and,
under a clock that each training step and each ``predict`` advance by known
amounts, that its times, rates and ratios are those of the models they
name.
"""
import json
import os.path as osp

import pytest
from mmdet.models.detectors.base import BaseDetector
from mmengine.model import BaseModel

from conftest import load_script

# seconds a training step of each model type takes under the clock
STEP_SECONDS = {'CASTMask2Former': 1.0, 'CASTDistiller': 1.5,
                'GuidedDistiller': 2.5}


class _Clock:
    """The benchmark's ``time``: a ``perf_counter`` that only the ticks of
    the test advance."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_real_size_step_report(repo_root, tmp_path, capsys, monkeypatch):
    out = tmp_path / 'report.json'
    benchmark = load_script(
        osp.join(repo_root, 'tools', 'benchmark', 'real_size_step.py'))
    clock = _Clock()
    monkeypatch.setattr(benchmark, 'time', clock)
    train_step, forward = BaseModel.train_step, BaseDetector.forward
    predicted = []  # parameters of each model whose predict ran

    def timed_train_step(self, data, optim_wrapper):
        clock.now += STEP_SECONDS[type(self).__name__]
        return train_step(self, data, optim_wrapper)

    def timed_forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'predict':  # a second per 10^8 parameters
            predicted.append(sum(p.numel() for p in self.parameters()))
            clock.now += predicted[-1] / 1e8
        return forward(self, inputs, data_samples, mode)

    monkeypatch.setattr(BaseModel, 'train_step', timed_train_step)
    monkeypatch.setattr(BaseDetector, 'forward', timed_forward)
    assert benchmark.main([
        '--device', 'cpu', '--shape', '64', '128', '--infer-shape', '64',
        '128', '--num-queries', '10', '--num-points', '256', '--repeats',
        '1', '--warmup', '0', '--json-out',
        str(out)
    ]) == 0
    report = json.loads(out.read_text())
    train = report['train']
    assert train['shape'] == [64, 128]
    assert (train['labeled'], train['pseudo_labeled']) == (1, 1)
    # one step of each model is timed, and the ratios are to the labels-only
    # student's step
    assert train['supervised']['seconds'] == pytest.approx(1.0)
    assert train['stage2']['seconds'] == pytest.approx(1.5)
    assert train['guided_distillation']['seconds'] == pytest.approx(2.5)
    assert train['ratio'] == pytest.approx(1.5)
    assert train['gd_ratio'] == pytest.approx(2.5)
    # the real-size architectures, at reduced input size and query count
    assert report['student_52m']['params_m'] == pytest.approx(51, abs=2.5)
    assert report['student_79m']['params_m'] == pytest.approx(79, abs=2.5)
    assert report['teacher_mask2former_swin-l']['params_m'] > 200
    # one batch-1 predict of each model, in this order: its images/s are
    # those of the model whose parameters the row gives
    keys = ('student_52m', 'student_79m', 'teacher_mask2former_swin-l')
    assert len(predicted) == len(keys)
    for key, params in zip(keys, predicted):
        assert report[key]['params_m'] == pytest.approx(params / 1e6)
        assert report[key]['images_per_s'] == pytest.approx(1e8 / params)
    # no BERT / SAM 2 files here: the row names them instead of a number
    assert 'sam2.1_hiera_large.pt' in report['teacher_gdino-sam2']['skipped']
    table = capsys.readouterr().out
    assert '| stage-2 / supervised | 1.50× |' in table
    assert '| Guided Distillation / supervised | 2.50× |' in table
    speed = predicted[2] / predicted[0]  # 52M student / Swin-L teacher
    assert f'| student 52M / mask2former_swin-l speed | {speed:.2f}× |' \
        in table
