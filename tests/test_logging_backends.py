# Copyright (c) mmcast contributors. All rights reserved.
"""Logging backends: the runtime bases offer TensorBoard and W&B through
MMEngine's ``vis_backends`` (off by default); a toy stage trained with the
TensorBoard one writes event files holding the same scalars as its json
log, and the curve reader of ``tools/analysis/plot_pipeline.py`` reads
either."""
import argparse
import glob
import os
import os.path as osp
import shutil

import pytest
from mmengine.config import Config, DictAction

from conftest import REPO_ROOT, load_script, toy_cfg_options

CONFIG = osp.join(REPO_ROOT, 'configs', 'mmcast', 'supervised_student_toy.py')


@pytest.mark.parametrize('runtime', ['cast_runtime.py', 'toy_runtime.py'])
def test_runtime_bases_offer_tensorboard_and_wandb_off_by_default(runtime):
    import mmengine.visualization  # noqa: F401  (registers the backends)
    from mmengine.registry import VISBACKENDS

    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'mmcast', '_base_', runtime))
    assert cfg.visualizer.vis_backends == [dict(type='LocalVisBackend')]
    for name, extra in (('tensorboard_vis_backends', 'TensorboardVisBackend'),
                        ('wandb_vis_backends', 'WandbVisBackend')):
        types = [b['type'] for b in cfg[name]]
        # the json log the tools read stays on
        assert types == ['LocalVisBackend', extra], name
        assert VISBACKENDS.get(extra) is not None, extra


@pytest.fixture(scope='module')
def tensorboard_run(toy_data_root, tmp_path_factory):
    """Two iterations of the labels-only toy stage with the TensorBoard
    backend, switched on as a user's config would."""
    from mmdet.utils import register_all_modules
    from mmengine.runner import Runner

    import mmcast  # noqa: F401
    register_all_modules(init_default_scope=True)
    work_dir = str(tmp_path_factory.mktemp('tensorboard'))
    user_cfg = osp.join(work_dir, 'my_config.py')
    with open(user_cfg, 'w') as f:
        f.write(f"_base_ = '{CONFIG}'\n"
                'visualizer = dict('
                'vis_backends={{_base_.tensorboard_vis_backends}})\n')
    saved = os.environ.get('MMCAST_TOY_ROOT')
    os.environ['MMCAST_TOY_ROOT'] = toy_data_root + '/'
    try:
        cfg = Config.fromfile(user_cfg)
    finally:
        if saved is None:
            os.environ.pop('MMCAST_TOY_ROOT')
        else:
            os.environ['MMCAST_TOY_ROOT'] = saved
    options = toy_cfg_options(toy_data_root, work_dir) + [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'param_scheduler.end=2', f'work_dir={work_dir}',
        'train_dataloader.dataset.ann_file='
        'annotations/semi/instancesonly_filtered_gtFine_train.1@25.json'
    ]
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg.merge_from_dict(
        parser.parse_args(['--cfg-options'] + options).cfg_options)
    Runner.from_cfg(cfg).train()
    return work_dir


def test_tensorboard_backend_logs_the_scalars_the_json_has(tensorboard_run):
    plot = load_script(osp.join(REPO_ROOT, 'tools/analysis/plot_pipeline.py'))
    (events, ) = glob.glob(osp.join(tensorboard_run, '*', 'vis_data',
                                    'events.out.tfevents.*'))
    from_json = plot.read_scalars(tensorboard_run)
    assert from_json['loss'][0] == [1, 2]
    assert 'coco/segm_mAP' in from_json
    # the same run read from its event files alone
    events_only = osp.join(tensorboard_run, 'events_only')
    run_dir = osp.dirname(osp.dirname(events))
    shutil.copytree(osp.join(run_dir, 'vis_data'),
                    osp.join(events_only, osp.basename(run_dir), 'vis_data'),
                    ignore=shutil.ignore_patterns('*.json'))
    from_events = plot.read_scalars(events_only)
    for name in ('loss', 'lr', 'coco/segm_mAP'):
        its, values = from_json[name]
        assert from_events[name][0] == its, name
        assert from_events[name][1] == pytest.approx(values, rel=1e-6), name
    # validation counts at the iteration it ran after, as in the json
    assert from_events['coco/segm_mAP'][0] == [2]


def test_a_later_runner_gets_its_own_visualizer(tmp_path):
    """MMEngine lends a visualizer by name to every later caller, save dir
    included; ``forget_visualizers`` (after each test, and after each
    in-process smoke run) drops them all, subclasses' too."""
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.visualization import Visualizer

    from mmcast.testing import forget_visualizers

    def visualizer(cls, save_dir):
        return cls.get_instance(
            'runner_vis', vis_backends=[dict(type='LocalVisBackend')],
            save_dir=str(tmp_path / save_dir))

    first = visualizer(DetLocalVisualizer, 'first')
    assert visualizer(DetLocalVisualizer, 'second') is first  # lent on
    forget_visualizers()
    assert 'runner_vis' not in Visualizer._instance_dict
    assert 'runner_vis' not in DetLocalVisualizer._instance_dict
    second = visualizer(DetLocalVisualizer, 'second')
    assert second is not first
    second.add_config(Config(dict(a=1)))
    assert (tmp_path / 'second' / 'vis_data' / 'config.py').is_file()
    assert not (tmp_path / 'first' / 'vis_data' / 'config.py').exists()
