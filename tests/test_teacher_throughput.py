# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/benchmark/teacher_throughput.py`` on the tiny box-prompted teacher.

The benchmark times the same teacher twice (plain ``test_step`` and the
pseudo-labelling engine); here it runs on 4 toy images under a clock that
the teacher's forward and the pseudo-label filter advance by known amounts,
so that its rates, their ratio and its pseudo-label count are checked
against values computed in the test. The teacher loader it shares with
``tools/pseudo_label.py`` reads a stage-1b (``CASTDistiller``) checkpoint as
its student's weights.
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch

from mmcast.models.teachers import build_frozen_teacher
from mmcast.toy.tiny_teachers import build_tiny_teacher_assets
from mmengine.config import Config

from conftest import load_script

TOY_TEACHER = 'configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_toy.py'


@pytest.fixture(scope='module')
def assets(tmp_path_factory):
    return build_tiny_teacher_assets(str(tmp_path_factory.mktemp('tiny')))


class _Clock:
    """The benchmark's ``time``: a ``perf_counter`` that only the work the
    test ticks advances, so that every duration it reports is known."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def _expected_pseudo_labels(pred) -> int:
    """The pseudo-labels of one image by the filter's rule (score > 0.3, at
    most 100, masks binarised at 0.5 and painted in descending score order,
    empty ones dropped), one mask at a time."""
    scores = pred.scores.float().numpy()
    masks = pred.masks.cpu().numpy()
    masks = masks if masks.dtype == bool else masks > 0.5
    order = [i for i in np.argsort(-scores, kind='stable') if scores[i] > 0.3]
    taken = np.zeros(masks.shape[1:], dtype=bool)
    count = 0
    for i in order[:100]:
        count += bool((masks[i] & ~taken).any())
        taken |= masks[i]
    return count


def test_report_times_the_teacher_and_counts_its_pseudo_labels(
        repo_root, toy_data_root, assets, tmp_path, monkeypatch):
    """With a clock that the teacher's forward advances by 0.5 s per image
    and the pseudo-label filter by 0.25 s per image, the rates and their
    ratio are known: plain 4 images / 2 s (the warm-up batch untimed),
    pseudo-labelling 4 images / 3 s; the pseudo-labels written are those of
    the teacher's predictions under the filter's rule."""
    from mmcast.models.teachers import BoxPromptedTeacher
    from mmcast.pseudo_labels import PseudoLabelFilter

    monkeypatch.setenv('MMCAST_TINY_TEACHERS', assets['root'])
    out = tmp_path / 'report.json'
    benchmark = load_script(
        osp.join(repo_root, 'tools', 'benchmark', 'teacher_throughput.py'))
    clock = _Clock()
    monkeypatch.setattr(benchmark, 'time', clock)
    predictions = {}
    test_step, filter_call = (BoxPromptedTeacher.test_step,
                              PseudoLabelFilter.__call__)

    def timed_test_step(self, data):
        clock.now += 0.5 * len(data['inputs'])
        outputs = test_step(self, data)
        for sample in outputs:
            predictions[sample.img_id] = sample.pred_instances.cpu()
        return outputs

    def timed_filter(self, pred_instances):
        clock.now += 0.25
        return filter_call(self, pred_instances)

    monkeypatch.setattr(BoxPromptedTeacher, 'test_step', timed_test_step)
    monkeypatch.setattr(PseudoLabelFilter, '__call__', timed_filter)
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
    assert plain['seconds'] == pytest.approx(2.0)
    assert plain['images_per_s'] == pytest.approx(2.0)
    assert pseudo['seconds'] == pytest.approx(3.0)
    assert pseudo['images_per_s'] == pytest.approx(4 / 3)
    assert report['ratio'] == pytest.approx(2 / 3)
    # the teacher ran on the first 4 images of the json (deterministically:
    # its last prediction of each is the one the labeller filtered)
    with open(osp.join(toy_data_root, 'annotations',
                       'instancesonly_filtered_gtFine_train.json')) as f:
        first = [img['id'] for img in json.load(f)['images'][:4]]
    assert sorted(predictions) == sorted(first)
    expected = sum(_expected_pseudo_labels(p) for p in predictions.values())
    assert expected > 0  # the tiny teacher finds instances in toy scenes
    assert pseudo['pseudo_labels'] == expected


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
