# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/benchmark/real_size_step.py`` on CPU at reduced size.

The benchmark is meant for a GPU (the configs' crop, AMP); here it runs
every section on 64×128 images with 10 queries to show that the real-size
models it builds are the ones the configs train (parameter counts) and that
its report is consistent.
"""
import json
import math
import os.path as osp

import pytest

from conftest import load_script


def test_real_size_step_report(repo_root, tmp_path, capsys):
    out = tmp_path / 'report.json'
    benchmark = load_script(
        osp.join(repo_root, 'tools', 'benchmark', 'real_size_step.py'))
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
    assert train['ratio'] == pytest.approx(
        train['stage2']['seconds'] / train['supervised']['seconds'])
    assert train['gd_ratio'] == pytest.approx(
        train['guided_distillation']['seconds'] /
        train['supervised']['seconds'])
    # the real-size architectures, at reduced input size and query count
    assert report['student_52m']['params_m'] == pytest.approx(51, abs=2.5)
    assert report['student_79m']['params_m'] == pytest.approx(79, abs=2.5)
    assert report['teacher_mask2former_swin-l']['params_m'] > 200
    for key in ('student_52m', 'student_79m', 'teacher_mask2former_swin-l'):
        assert math.isfinite(report[key]['images_per_s'])
        assert report[key]['images_per_s'] > 0
    # no BERT / SAM 2 files here: the row names them instead of a number
    assert 'sam2.1_hiera_large.pt' in report['teacher_gdino-sam2']['skipped']
    table = capsys.readouterr().out
    assert 'stage-2 / supervised' in table
    assert 'Guided Distillation / supervised' in table
    assert 'student 52M / mask2former_swin-l speed' in table
