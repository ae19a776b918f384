# Copyright (c) mmcast contributors. All rights reserved.
"""What a run's spec hands its stages (:class:`~mmcast.apis.pipeline.
RunSpec`): your class names reach the stage configs intact, as MMEngine
loads them in the stages (a backslash, accents, other scripts), and names
that differ from the categories only in Unicode normalisation are named
so."""
import json
import os.path as osp
import unicodedata

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT
from mmcast.apis.pipeline import ConfigLoader, RunSpec, parse_args
from mmcast.apis.pipeline.data_preparation import check_custom_dataset
from mmcast.apis.pipeline.settings import CUSTOM_ENVS

CLASSES = ('a\\b', 'café', '人')
CONFIG = 'configs/mmcast/custom/distill_custom-cpu.py'


def _spec(tmp_path, *classes: str) -> RunSpec:
    return RunSpec.from_args(parse_args([
        'custom-cpu', '--work-dir', str(tmp_path / 'run'), '--data-root',
        str(tmp_path / 'data'), '--classes', *classes]))


def test_class_names_reach_the_stages_intact(tmp_path, monkeypatch):
    spec = _spec(tmp_path, *CLASSES)
    ours = ConfigLoader(spec).read(CONFIG)
    assert ours.classes == CLASSES
    assert ours.metainfo.classes == CLASSES
    # the stages load the config with MMEngine, in spec.env
    for name in CUSTOM_ENVS:
        monkeypatch.delenv(name, raising=False)
        if name in spec.env:
            monkeypatch.setenv(name, spec.env[name])
    theirs = Config.fromfile(osp.join(REPO_ROOT, CONFIG))
    assert theirs.classes == CLASSES
    assert theirs.data_root == str(tmp_path / 'data') + '/'


def _dataset(root, categories) -> None:
    for split in ('train', 'val'):
        path = root / 'annotations' / f'instances_{split}.json'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(
            images=[], annotations=[],
            categories=[dict(id=i + 1, name=n)
                        for i, n in enumerate(categories)])))


@pytest.mark.parametrize('typed', ['NFD', 'NFC'])
def test_names_in_another_normal_form_are_named(tmp_path, typed):
    _dataset(tmp_path / 'data', [unicodedata.normalize('NFC', 'café'), 'x'])
    name = unicodedata.normalize(typed, 'café')
    spec = _spec(tmp_path, name, 'x')
    problems = check_custom_dataset(spec, ConfigLoader(spec))
    if typed == 'NFC':
        assert problems == []
        return
    assert len(problems) == 2  # train and val
    assert 'differ only in Unicode normalisation' in problems[0]
    assert 'NFD (U+0063 U+0061 U+0066 U+0065 U+0301)' in problems[0]
    assert 'NFC (U+0063 U+0061 U+0066 U+00E9)' in problems[0]
