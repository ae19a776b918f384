# Copyright (c) mmcast contributors. All rights reserved.
"""SwinMTL configs: every config loads and builds; the toy config trains,
evaluates (mIoU + depth metrics), is tested and resumes under MMSegmentation's
stock scripts (``mim train/test mmseg``), and so does its critic-off variant;
the real-size configs train one step at reduced size on synthetic data in
their real layouts; the picture tool draws depth and segmentation."""
import copy
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from projects.swinmtl.swinmtl.datasets import (TOY_DEPTH_CLASSES,
                                               make_toy_depth_dataset)
from projects.swinmtl.swinmtl.datasets.toy_depth_scenes import (
    render_toy_depth_scene, toy_depth_rng)
from .conftest import PROJECT_ROOT, REPO_ROOT, load_script

pytestmark = pytest.mark.slow_fixture(2)

CONFIG_DIR = osp.join(PROJECT_ROOT, 'configs')
CONFIGS = sorted(
    osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py')))
TOY = 'projects/swinmtl/configs/swinmtl_swinv2-tiny_toy.py'
TOY_NO_CRITIC = \
    'projects/swinmtl/configs/swinmtl_swinv2-tiny_toy_no-critic.py'
REAL = [c for c in CONFIGS if '_toy' not in c]
MIM = osp.join(osp.dirname(sys.executable), 'mim')
TOY_SIZE = dict(num_train=8, num_val=4, height=64, width=96, seed=0)
DEPTH_KEYS = ('d1', 'd2', 'd3', 'abs_rel', 'sq_rel', 'rmse', 'rmse_log',
              'silog')
AUGMENTS = ('PhotoMetricDistortion', 'RandomGamma', 'RandomFlip',
            'RandomCrop')
# The toy run learns: 100 iterations take the model from abs_rel 0.95, d1
# 0, RMSE 16.4 m and mIoU 3.4 at its initialisation to abs_rel 0.22, d1
# 0.72, RMSE 5.6 m and mIoU 33.8 on the 4 validation images (mim train,
# the config's seed 0; in a runner, seeds 0 / 1: abs_rel 0.26 / 0.25, d1
# 0.54 / 0.62, RMSE 5.8 / 6.5 m, mIoU 31.9 / 36.1 from 10.6 / 0.5); the
# test asserts gains well inside that (lower is better: abs_rel, RMSE).
TOY_ITERS = 100
MIN_GAIN = {'abs_rel': -0.3, 'rmse': -5.0, 'd1': 0.25, 'mIoU': 10.0}


def _load(name: str) -> Config:
    return Config.fromfile(osp.join(CONFIG_DIR, name))


def _types(pipeline) -> list:
    return [step['type'] for step in pipeline]


# (1) every config loads and builds --------------------------------------


def test_every_config_is_covered():
    """The configs these tests know about are the configs that ship."""
    assert set(CONFIGS) == {
        'swinmtl_swinv2-b_cityscapes.py',
        'swinmtl_swinv2-b_cityscapes_no-critic.py',
        'swinmtl_swinv2-b_cityscapes_linear-depth.py',
        'swinmtl_swinv2-b_cityscapes_no-aug.py', 'swinmtl_swinv2-b_nyuv2.py',
        'swinmtl_swinv2-tiny_toy.py', 'swinmtl_swinv2-tiny_toy_no-critic.py',
        'swinmtl_swinv2-tiny_toy_linear-depth.py',
        'swinmtl_swinv2-tiny_toy_no-aug.py'
    }


@pytest.mark.parametrize('name', CONFIGS)
def test_config_loads_and_builds(name):
    from mmseg.registry import MODELS
    cfg = _load(name)
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports == dict(
        imports=['mmcast', 'projects.swinmtl.swinmtl'],
        allow_failed_imports=False)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'SwinMTL'
    no_critic = 'no-critic' in name
    assert model.with_critic != no_critic
    if no_critic:  # one optimizer, one scheduler list
        assert cfg.optim_wrapper.type == 'OptimWrapper'
        assert 'critic' not in cfg.optim_wrapper
        assert isinstance(cfg.param_scheduler, list)
    else:
        assert set(cfg.param_scheduler) == {'generator', 'critic'}
        critic = cfg.optim_wrapper.critic.optimizer
        assert (critic.type, critic.lr) == ('Adam', 1e-4)
    generator = cfg.optim_wrapper if no_critic else \
        cfg.optim_wrapper.generator
    assert (generator.optimizer.type, generator.optimizer.lr,
            generator.optimizer.weight_decay) == ('AdamW', 5e-4, 0.05)
    assert generator.paramwise_cfg.layer_decay_rate == 0.9
    assert model.generator.depth_head.depth_scaling == (
        'linear' if 'linear-depth' in name else 'log')
    train_types = _types(cfg.train_dataloader.dataset.pipeline)
    batch_augments = [
        a.type for a in cfg.model.data_preprocessor.batch_augments or []
    ]
    if 'no-aug' in name:
        assert not set(AUGMENTS) & set(train_types) and not batch_augments
    else:
        assert set(AUGMENTS) <= set(train_types)
        assert batch_augments == ['CutMixPatches']
    metrics = {m.type: m for m in cfg.val_evaluator}
    assert set(metrics) == {'IoUMetric', 'DepthMetric'}
    assert metrics['DepthMetric'].min_depth_eval == 1e-3
    assert metrics['DepthMetric'].max_depth_eval == \
        model.generator.depth_head.max_depth
    if name in REAL:
        assert cfg.train_dataloader.batch_size == 4
        backbone = cfg.model.backbone
        assert backbone.arch == 'base'
        assert backbone.window_size == [22, 22, 22, 11]
        assert backbone.init_cfg.checkpoint.startswith('microsoft-swinv2://')
        shifted = [[block.attn.shift_size > 0 for block in stage.blocks]
                   for stage in model.generator.backbone.stages]
        assert shifted == [[False, True]] * 2 + [[False] * 18, [False] * 2]
        if 'no-aug' not in name:
            assert cfg.model.data_preprocessor.size == (480, 480)
            crop = [s for s in cfg.train_dataloader.dataset.pipeline
                    if s.type == 'RandomCrop']
            assert crop[0].crop_size == (480, 480)
        cityscapes = 'cityscapes' in name
        assert model.num_classes == (19 if cityscapes else 40)
        assert model.generator.depth_head.max_depth == (
            80.0 if cityscapes else 10.0)


def test_toy_data_root_from_environment(monkeypatch):
    monkeypatch.setenv('MMCAST_TOY_DEPTH_ROOT', '/elsewhere/toy/')
    cfg = Config.fromfile(osp.join(REPO_ROOT, TOY))
    for loader in ('train', 'val', 'test'):
        assert cfg[f'{loader}_dataloader'].dataset.data_root == \
            '/elsewhere/toy/'
    monkeypatch.delenv('MMCAST_TOY_DEPTH_ROOT')
    cfg = Config.fromfile(osp.join(REPO_ROOT, TOY))
    assert cfg.train_dataloader.dataset.data_root == 'data/toy_depth/'


# (2) the toy config under the stock scripts ------------------------------


@pytest.fixture(scope='module')
def toy_depth_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('toy_depth'))
    make_toy_depth_dataset(root, **TOY_SIZE)
    return root + '/'


def _toy_options(root: str) -> list:
    return [
        f'{loader}_dataloader.dataset.data_root={root}'
        for loader in ('train', 'val', 'test')
    ] + ['default_hooks.logger.interval=1']


def _mim(args) -> str:
    """``mim ARGS`` as the README runs it: from the repository root, with
    the root first on ``PYTHONPATH`` (the configs import the project)."""
    path = [REPO_ROOT] + [p for p in os.environ.get('PYTHONPATH', '').split(
        os.pathsep) if p]
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(path))
    env.pop('MMCAST_TOY_DEPTH_ROOT', None)
    proc = subprocess.run([MIM] + args, cwd=REPO_ROOT, capture_output=True,
                          text=True, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def _metrics(log: str, mode: str) -> dict:
    """The metrics of the last ``Iter(<mode>)`` summary line of a log."""
    lines = [
        line for line in log.splitlines()
        if f'Iter({mode})' in line and 'mIoU' in line
    ]
    assert lines, f'no Iter({mode}) line with metrics'
    return {
        key: float(value)
        for key, value in re.findall(r'(\w+): (-?[\d.]+|nan)', lines[-1])
    }


@pytest.fixture(scope='module')
def toy_run(toy_depth_root, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('swinmtl_toy'))
    options = _toy_options(toy_depth_root)
    log = _mim([
        'train', 'mmseg', TOY, '--work-dir', work_dir, '--cfg-options',
        f'train_cfg.max_iters={TOY_ITERS}',
        f'train_cfg.val_interval={TOY_ITERS}',
        f'default_hooks.checkpoint.interval={TOY_ITERS // 2}'
    ] + options)
    return work_dir, options, log


@pytest.fixture(scope='module')
def toy_initial(toy_depth_root, tmp_path_factory):
    """``mim test`` of the toy model as initialised (the config's seed 0):
    its metrics."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    import projects.swinmtl.swinmtl  # noqa: F401
    work_dir = tmp_path_factory.mktemp('swinmtl_toy_init')
    cfg = Config.fromfile(osp.join(REPO_ROOT, TOY))
    torch.manual_seed(cfg.randomness.seed)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    checkpoint = str(work_dir / 'init.pth')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    log = _mim([
        'test', 'mmseg', TOY, '--checkpoint', checkpoint, '--work-dir',
        str(work_dir), '--cfg-options'
    ] + _toy_options(toy_depth_root))
    return _metrics(log, 'test')


def test_toy_trains_and_evaluates_both_tasks(toy_run, toy_initial):
    work_dir, _, log = toy_run
    metrics = _metrics(log, 'val')
    assert {'mIoU', *DEPTH_KEYS} <= set(metrics)
    # both tasks learned
    for key, gain in MIN_GAIN.items():
        if gain > 0:
            assert metrics[key] >= toy_initial[key] + gain, (key, metrics,
                                                             toy_initial)
        else:
            assert metrics[key] <= toy_initial[key] + gain, (key, metrics,
                                                             toy_initial)
    for key in ('loss_seg', 'loss_depth', 'loss_adv', 'loss_critic',
                'loss_gp'):
        assert f'{key}: ' in log, key
    scalars = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert len(scalars) == 1
    with open(scalars[0]) as f:
        records = [json.loads(line) for line in f]
    val = [r for r in records if 'mIoU' in r]
    assert len(val) == 1 and val[0]['step'] == TOY_ITERS
    assert {'abs_rel', 'rmse', 'silog'} <= set(val[0])
    # both optimizers and the critic are in the checkpoint
    ckpt = torch.load(osp.join(work_dir, f'iter_{TOY_ITERS}.pth'),
                      map_location='cpu', weights_only=True)
    assert set(ckpt['optimizer']) == {'generator', 'critic'}
    assert any(k.startswith('critic.') for k in ckpt['state_dict'])
    assert ckpt['meta']['dataset_meta']['classes'] == TOY_DEPTH_CLASSES


def test_mim_test_evaluates_the_checkpoint(toy_run):
    work_dir, options, train_log = toy_run
    log = _mim([
        'test', 'mmseg', TOY, '--checkpoint',
        osp.join(work_dir, f'iter_{TOY_ITERS}.pth'), '--work-dir', work_dir,
        '--cfg-options'
    ] + options)
    tested, validated = _metrics(log, 'test'), _metrics(train_log, 'val')
    # the same model on the same images: the numbers of the training run
    for key in ('mIoU', *DEPTH_KEYS):
        assert tested[key] == pytest.approx(validated[key], abs=1e-3), key


def test_resume_continues_both_optimizers(toy_run):
    work_dir, options, _ = toy_run
    log = _mim([
        'train', 'mmseg', TOY, '--work-dir', work_dir, '--resume',
        '--cfg-options', f'train_cfg.max_iters={TOY_ITERS + 2}',
        f'train_cfg.val_interval={TOY_ITERS + 2}',
        'default_hooks.checkpoint.interval=2'
    ] + options)
    assert f'resumed epoch: 0, iter: {TOY_ITERS}' in log
    before = torch.load(osp.join(work_dir, f'iter_{TOY_ITERS}.pth'),
                        map_location='cpu', weights_only=True)
    after = torch.load(osp.join(work_dir, f'iter_{TOY_ITERS + 2}.pth'),
                       map_location='cpu', weights_only=True)
    assert after['meta']['iter'] == TOY_ITERS + 2
    for name in ('generator', 'critic'):
        steps = [
            int(s['step']) for s in after['optimizer'][name]['state'].values()
        ]
        # TOY_ITERS before the restart + 2 after
        assert set(steps) == {TOY_ITERS + 2}, name
        assert before['optimizer'][name]['state'] != {}


def test_critic_off_variant_trains(toy_depth_root, tmp_path):
    log = _mim([
        'train', 'mmseg', TOY_NO_CRITIC, '--work-dir',
        str(tmp_path), '--cfg-options', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2'
    ] + _toy_options(toy_depth_root))
    assert {'mIoU', *DEPTH_KEYS} <= set(_metrics(log, 'val'))
    assert 'loss_critic' not in log and 'loss_adv' not in log
    ckpt = torch.load(str(tmp_path / 'iter_2.pth'), map_location='cpu',
                      weights_only=True)
    assert not any(k.startswith('critic.') for k in ckpt['state_dict'])
    # one optimizer's state, not a dict of them
    assert 'state' in ckpt['optimizer'] and 'generator' not in ckpt[
        'optimizer']


# (3) the real-size configs train a step at reduced size ------------------

#: Toy class -> Cityscapes train id (road, sky, car, person, pole).
CITYSCAPES_IDS = np.array([0, 10, 13, 11, 5], dtype=np.uint8)
#: Toy class -> NYUv2-40 label (floor, wall, cabinet, box, lamp; 0 = void).
NYU_IDS = np.array([2, 1, 3, 29, 35], dtype=np.uint8)
BASELINE, FX = 0.209313, 2262.52  # a Cityscapes camera


def _write(path: str, array: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(path, array), path


def _write_cityscapes(root: str, height: int = 64, width: int = 128) -> None:
    """Toy scenes in Cityscapes' layout: images, train ids, 16-bit
    disparity (p = 256 * baseline * fx / depth + 1, 0 = none) and camera
    files."""
    for split in ('train', 'val'):
        for index in range(2):
            scene = render_toy_depth_scene(height, width,
                                           toy_depth_rng(3, split, index))
            stem = f'toyburg_{index:06d}_000019'
            base = f'{split}/toyburg/{stem}'
            depth = scene.depth
            raw = np.zeros(depth.shape, dtype=np.uint16)
            valid = depth > 0
            raw[valid] = np.rint(256 * BASELINE * FX / depth[valid] + 1)
            labels = CITYSCAPES_IDS[scene.labels]
            labels[:2] = 255  # some ignored pixels
            _write(osp.join(root, 'leftImg8bit', f'{base}_leftImg8bit.png'),
                   scene.image)
            _write(
                osp.join(root, 'gtFine', f'{base}_gtFine_labelTrainIds.png'),
                labels)
            _write(osp.join(root, 'disparity', f'{base}_disparity.png'), raw)
            camera = osp.join(root, 'camera', f'{base}_camera.json')
            os.makedirs(osp.dirname(camera), exist_ok=True)
            with open(camera, 'w') as f:
                json.dump(
                    dict(
                        extrinsic=dict(baseline=BASELINE),
                        intrinsic=dict(fx=FX, fy=FX, u0=width / 2,
                                       v0=height / 2)), f)


def _write_nyu(root: str, height: int = 64, width: int = 96) -> None:
    """Toy scenes in the NYUv2 layout: jpg images, depth in mm, 40-class
    labels (0 = void), scene-category file names."""
    for split, stream in (('train', 'train'), ('test', 'val')):
        for index in range(2):
            scene = render_toy_depth_scene(height, width,
                                           toy_depth_rng(4, stream, index))
            name = f'bedroom_{index:04d}'
            labels = NYU_IDS[scene.labels]
            labels[:2] = 0
            depth_mm = (scene.depth_mm // 5).astype(np.uint16)  # <= 10 m
            _write(osp.join(root, 'images', split, f'{name}.jpg'),
                   scene.image)
            _write(osp.join(root, 'annotations', split, f'{name}.png'),
                   depth_mm)
            _write(osp.join(root, 'labels40', split, f'{name}.png'), labels)


def _reduce(cfg: Config, data_root: str, work_dir: str, tag: str) -> Config:
    """The config at CPU size: a tiny SwinV2 (no pre-trained weights), the
    decoder and heads at 16 channels, 64x64 crops, 128x64 resizes, batch 2,
    one iteration and a validation."""
    cfg = copy.deepcopy(cfg)
    model = cfg.model
    model.backbone.update(
        arch=dict(
            embed_dims=16,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 2, 2],
            extra_norm_every_n_blocks=0),
        img_size=64,
        window_size=[4, 4, 2, 2],
        pretrained_window_sizes=[0, 0, 0, 0],
        init_cfg=None)
    model.decoder.update(in_channels=128, deconv_channels=8, out_channels=16)
    model.depth_head.update(in_channels=16, channels=16)
    model.seg_head.update(in_channels=16, channels=16)
    if model.critic is not None:
        model.critic.channels = (8, 16, 16, 16)
    if model.data_preprocessor.size is not None:
        model.data_preprocessor.size = (64, 64)
    for loader in ('train', 'val', 'test'):
        dataloader = cfg[f'{loader}_dataloader']
        dataloader.update(num_workers=0, persistent_workers=False)
        dataloader.dataset.data_root = data_root
        for step in dataloader.dataset.pipeline:
            if step['type'] == 'Resize':
                step['scale'] = (128, 64)
            if step['type'] == 'RandomCrop':
                step['crop_size'] = (64, 64)
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg.update(max_iters=1, val_interval=1)
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = work_dir
    cfg.experiment_name = f'swinmtl_{tag}'
    cfg.visualizer.name = f'swinmtl_{tag}'
    cfg.randomness = dict(seed=0)
    return cfg


class _Record(Hook):
    """Keep the losses of every training iteration and the metrics of the
    last validation."""

    def __init__(self):
        self.losses = []
        self.metrics = None

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses.append({k: v.item() for k, v in outputs.items()})

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = metrics


@pytest.fixture(scope='module')
def real_layout_roots(tmp_path_factory):
    cityscapes = str(tmp_path_factory.mktemp('cityscapes'))
    nyu = str(tmp_path_factory.mktemp('nyu'))
    _write_cityscapes(cityscapes)
    _write_nyu(nyu)
    return dict(cityscapes=cityscapes + '/', nyu=nyu + '/')


@pytest.mark.parametrize('name', REAL)
def test_real_config_trains_a_step_at_reduced_size(name, real_layout_roots,
                                                    tmp_path):
    dataset = 'cityscapes' if 'cityscapes' in name else 'nyu'
    tag = osp.splitext(name)[0]
    cfg = _reduce(_load(name), real_layout_roots[dataset], str(tmp_path), tag)
    runner = Runner.from_cfg(cfg)
    record = _Record()
    runner.register_hook(record)
    runner.train()
    assert runner.iter == 1 and len(record.losses) == 1
    losses = record.losses[0]
    assert all(np.isfinite(v) for v in losses.values()), losses
    assert ('loss_adv' in losses) == ('no-critic' not in name)
    # the validation after the step saw labels and valid depth
    metrics = record.metrics
    assert {'mIoU', *DEPTH_KEYS} <= set(metrics)
    assert all(np.isfinite(metrics[k]) for k in DEPTH_KEYS), metrics
    assert osp.isfile(osp.join(str(tmp_path), 'iter_1.pth'))


# (4) the picture tool ----------------------------------------------------


def test_picture_tool_draws_depth_and_segmentation(toy_run, toy_depth_root,
                                                   tmp_path):
    tool = load_script(osp.join(PROJECT_ROOT, 'tools', 'show_depth_seg.py'))
    work_dir, _, _ = toy_run
    checkpoint = osp.join(work_dir, f'iter_{TOY_ITERS}.pth')
    written = tool.main([
        osp.join(REPO_ROOT, TOY), checkpoint, '--out-dir',
        str(tmp_path / 'val'), '--num', '2', '--panel-width', '96',
        '--cfg-options', f'test_dataloader.dataset.data_root={toy_depth_root}'
    ])
    assert [osp.basename(p) for p in written] == [
        'toy_000000.png', 'toy_000001.png'
    ]
    height, width, gap, header = 64, 96, tool.GAP, tool.HEADER
    picture = cv2.imread(written[0])
    assert picture.shape == (header + height, 5 * width + 4 * gap, 3)
    panels = [
        picture[header:, i * (width + gap):i * (width + gap) + width]
        for i in range(5)
    ]
    image, depth, gt_depth, seg, gt_seg = (p.astype(np.int64) for p in panels)
    source = osp.join(toy_depth_root, '{}', 'val', 'toy_000000.png')
    assert np.array_equal(image, cv2.imread(source.format('images')))
    labels = cv2.imread(source.format('labels'), cv2.IMREAD_UNCHANGED)
    meta = torch.load(checkpoint, weights_only=True)['meta']
    palette = np.array(meta['dataset_meta']['palette'])
    assert np.array_equal(gt_seg, palette[labels][..., ::-1])
    # ground-truth depth: the sky (no depth) black, the ground brighter
    # (nearer) towards the bottom
    sky = labels == TOY_DEPTH_CLASSES.index('sky')
    assert (gt_depth[sky] == 0).all() and (gt_depth[~sky].sum(-1) > 0).all()
    ground_rows = [
        y for y in range(height)
        if (labels[y] == TOY_DEPTH_CLASSES.index('ground')).all()
    ]
    brightness = gt_depth.sum(-1)
    assert brightness[ground_rows[-1]].mean() > \
        brightness[ground_rows[0]].mean()
    # depth and segmentation panels are different pictures
    assert np.abs(depth - seg).mean() > 20
    assert np.abs(gt_depth - gt_seg).mean() > 20
    # the trained model's predictions, not the ground truth (on this image:
    # 76 % of the pixels of the class of the ground truth, depth brightness
    # correlated 0.84 with the ground truth's off the sky)
    assert 0.5 < (seg == gt_seg).all(-1).mean() < 0.99
    brightness_corr = np.corrcoef(depth.sum(-1)[~sky], brightness[~sky])
    assert 0.5 < brightness_corr[0, 1] < 0.99

    # an image without ground truth: input | depth | segmentation
    only = tool.main([
        osp.join(REPO_ROOT, TOY), checkpoint, '--out-dir',
        str(tmp_path / 'images'), '--panel-width', '48', '--images',
        source.format('images')
    ])
    picture = cv2.imread(only[0])
    assert picture.shape == (header + 32, 3 * 48 + 2 * gap, 3)
