# Copyright (c) mmcast contributors. All rights reserved.
import os.path as osp

from mmengine.config import Config

from conftest import REPO_ROOT
from mmcast.utils.config_text import without_code_formatting


def test_a_copy_whose_text_reads_back_as_the_same_config(tmp_path):
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'mmcast', 'finetune_toy.py'))
    plain = without_code_formatting(cfg)
    assert plain.pretty_text != cfg.pretty_text
    path = str(tmp_path / 'dumped.py')
    plain.dump(path)
    assert Config.fromfile(path).to_dict() == cfg.to_dict()
    # the original keeps yapf's layout
    assert '\nmodel = dict(' in cfg.pretty_text
    assert '\nmodel=dict(\n' in plain.pretty_text
