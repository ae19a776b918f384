# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/benchmark/teacher_throughput.py`` on the tiny box-prompted teacher.

The benchmark times the same teacher twice (plain ``test_step`` and the
pseudo-labelling engine); here it runs on 4 toy images and its report is
checked for consistency. The teacher loader it shares with
``tools/pseudo_label.py`` reads a stage-1b (``CASTDistiller``) checkpoint as
its student's weights.
"""
import json
import math
import os.path as osp

import pytest
import torch

from mmcast.models.teachers import build_frozen_teacher
from mmcast.testing import build_tiny_teacher_assets
from mmengine.config import Config

from conftest import load_script

TOY_TEACHER = 'configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_toy.py'


@pytest.fixture(scope='module')
def assets(tmp_path_factory):
    return build_tiny_teacher_assets(str(tmp_path_factory.mktemp('tiny')))


def test_report_has_both_rates_and_their_ratio(repo_root, toy_data_root,
                                               assets, tmp_path,
                                               monkeypatch):
    monkeypatch.setenv('MMCAST_TINY_TEACHERS', assets['root'])
    out = tmp_path / 'report.json'
    benchmark = load_script(
        osp.join(repo_root, 'tools', 'benchmark', 'teacher_throughput.py'))
    rc = benchmark.main([
        osp.join(repo_root, TOY_TEACHER), assets['teacher_checkpoint'],
        '--unlabeled-ann', osp.join(
            toy_data_root, 'annotations',
            'instancesonly_filtered_gtFine_train.json'),
        '--data-root', toy_data_root + '/', '--img-prefix',
        'leftImg8bit/train/', '--num-images', '4', '--batch-size', '2',
        '--warmup', '1', '--device', 'cpu', '--json-out', str(out)
    ])
    assert rc == 0
    report = json.loads(out.read_text())
    plain, pseudo = report['plain'], report['pseudo_label']
    assert plain['images'] == pseudo['images'] == 4
    for rate in (plain['images_per_s'], pseudo['images_per_s']):
        assert math.isfinite(rate) and rate > 0
    assert report['ratio'] == pytest.approx(
        pseudo['images_per_s'] / plain['images_per_s'])
    assert pseudo['pseudo_labels'] >= 0


def test_missing_checkpoint_is_named(repo_root, tmp_path, capsys):
    missing = str(tmp_path / 'nope.pth')
    rc = load_script(osp.join(
        repo_root, 'tools', 'benchmark', 'teacher_throughput.py')).main([
        osp.join(repo_root, TOY_TEACHER), missing, '--unlabeled-ann', 'x.json'
    ])
    assert rc == 2
    assert missing in capsys.readouterr().err


def test_stage_1b_checkpoint_loads_as_the_teacher(repo_root, assets,
                                                   tmp_path, monkeypatch):
    """A CASTDistiller checkpoint (``student.`` keys) gives the same
    teacher weights as the plain checkpoint they came from."""
    monkeypatch.setenv('MMCAST_TINY_TEACHERS', assets['root'])
    cfg = Config.fromfile(osp.join(repo_root, TOY_TEACHER))
    plain = torch.load(assets['teacher_checkpoint'], map_location='cpu')
    wrapped = dict(plain, state_dict={
        'student.' + k: v for k, v in plain['state_dict'].items()})
    wrapped_file = str(tmp_path / 'stage1b.pth')
    torch.save(wrapped, wrapped_file)

    expected = build_frozen_teacher(cfg.model, assets['teacher_checkpoint'])
    loaded = build_frozen_teacher(cfg.model, wrapped_file)
    reference = expected.state_dict()
    state = loaded.state_dict()
    assert state.keys() == reference.keys()
    changed = [k for k in plain['state_dict'] if k in reference]
    assert changed, 'the checkpoint shares no key with the teacher'
    for key in changed:
        assert torch.equal(state[key], reference[key]), key
