# Copyright (c) mmcast contributors. All rights reserved.
"""``BatchScaledRunner`` writes its config text without yapf's reformatting
(the lr rule and the batch checks are run by
``tests/test_recipe_runs_by_hand.py``)."""
import glob
import os.path as osp

from mmengine.config import Config

from conftest import REPO_ROOT, toy_runner_config

CONFIG = osp.join(REPO_ROOT, 'configs', 'mmcast', 'supervised_student_toy.py')


def test_the_config_text_is_mmengines_unformatted_and_reads_back(
        toy_data_root, tmp_path):
    from mmengine.registry import RUNNERS

    from mmcast.engine import BatchScaledRunner
    cfg = toy_runner_config(CONFIG, toy_data_root, str(tmp_path))
    formatted = cfg.pretty_text  # yapf's
    runner = RUNNERS.build(cfg)
    assert isinstance(runner, BatchScaledRunner)
    text = runner.cfg.pretty_text
    assert text != formatted
    # one key per line, as MMEngine writes it before yapf
    assert '\nmodel=dict(\n' in text and '\nmodel = dict(' in formatted
    # the same config when read back, and the caller's keeps yapf
    assert Config.fromstring(text, '.py').to_dict() == cfg.to_dict()
    assert cfg.pretty_text == formatted
    log, = glob.glob(osp.join(str(tmp_path), '*', '*.log'))
    with open(log, encoding='utf-8') as f:
        assert f'Config:\n{text}' in f.read()
