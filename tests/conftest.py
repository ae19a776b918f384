# Copyright (c) mmcast contributors. All rights reserved.
"""Shared fixtures: small toy datasets generated once per test session."""
import importlib.util
import json
import os
import os.path as osp
import sys
from types import ModuleType

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the GPU suite runs on its own: make test-gpu (tests/gpu/run.py)
collect_ignore = ['gpu']
os.environ.setdefault('OMP_NUM_THREADS', '2')
sys.path.insert(0, REPO_ROOT)


def config_names() -> dict:
    """Short config name -> conventional name (``configs/mmcast/cast/``)."""
    with open(osp.join(REPO_ROOT, 'configs', 'mmcast',
                       'config_names.json')) as f:
        return json.load(f)


def conventional_config(short: str) -> str:
    """``configs/mmcast/cast/<name>.py`` of the short name ``short``."""
    return f'configs/mmcast/cast/{config_names()[short]}.py'


def is_config_alias(path: str) -> bool:
    """Whether ``path`` is a short-name alias (``configs/mmcast/<short>.py``,
    nothing but a ``_base_`` on its conventional config)."""
    rel = osp.relpath(osp.join(REPO_ROOT, path), REPO_ROOT)
    return osp.dirname(rel) == osp.join('configs', 'mmcast') and \
        osp.splitext(osp.basename(rel))[0] in config_names()


def forget_visualizer(cfg) -> None:
    """Let the next runner of ``cfg`` build its own visualizer: MMEngine
    keeps one per name and process, so a runner of an earlier test would
    otherwise lend its own (its save dir and backends)."""
    from mmdet.registry import VISUALIZERS
    VISUALIZERS.get(cfg.visualizer.type)._instance_dict.pop(
        cfg.visualizer.name, None)


def load_script(path: str) -> ModuleType:
    """Import a script that is not in a package (``tools/...py``) by path."""
    name = '_script_' + osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def repo_root() -> str:
    """Absolute path of the repository."""
    return REPO_ROOT


@pytest.fixture(scope='session')
def toy_data_root(tmp_path_factory) -> str:
    """A tiny toy dataset (8 train / 4 val images, 64×128) with a 25 % split."""
    from mmcast.datasets.semi_split import write_split
    from mmcast.datasets.toy_scenes import make_toy_dataset

    root = str(tmp_path_factory.mktemp('toy'))
    make_toy_dataset(root, num_train=8, num_val=4, height=64, width=128,
                     seed=0, show_progress=False)
    write_split(
        osp.join(root, 'annotations', 'instancesonly_filtered_gtFine_train.json'),
        osp.join(root, 'annotations', 'semi'), seed=1, percent=25)
    return root


def toy_cfg_options(data_root: str, work_dir: str) -> list:
    """``--cfg-options`` pointing a toy config at ``data_root``, CPU-sized."""
    root = data_root.rstrip('/') + '/'
    return [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'val_evaluator.0.ann_file={root}annotations/instancesonly_filtered_gtFine_val.json',
        f'val_evaluator.1.seg_prefix={root}gtFine/val',
        f'val_evaluator.1.outfile_prefix={work_dir}/cityscapes_metric',
        f'test_evaluator.0.ann_file={root}annotations/instancesonly_filtered_gtFine_val.json',
        f'test_evaluator.1.seg_prefix={root}gtFine/val',
        f'test_evaluator.1.outfile_prefix={work_dir}/cityscapes_metric',
        'default_hooks.logger.interval=1',
        'model.train_cfg.num_points=256',
    ]
