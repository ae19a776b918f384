# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/benchmark/swinmtl_step.py`` on CPU.

The size section runs at the real architecture (SwinV2-B: the spec's ~87M
parameters); the step and inference sections, meant for a GPU, run here on
a tiny encoder to show that the report is consistent.
"""
import json
import os.path as osp

import pytest
from mmengine.registry import init_default_scope

from conftest import load_script

TINY = {
    'model.backbone':
    dict(
        arch=dict(
            _delete_=True,  # a dict where the config names 'base'
            embed_dims=16,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 2, 2],
            extra_norm_every_n_blocks=0),
        img_size=64,
        window_size=[4, 4, 2, 2],
        pretrained_window_sizes=[0, 0, 0, 0]),
    'model.decoder':
    dict(in_channels=128, deconv_channels=8, out_channels=16),
    'model.depth_head':
    dict(in_channels=16, channels=16),
    'model.seg_head':
    dict(in_channels=16, channels=16),
    'model.data_preprocessor.size': (64, 64),
}


@pytest.fixture(scope='module')
def benchmark(repo_root):
    return load_script(
        osp.join(repo_root, 'tools', 'benchmark', 'swinmtl_step.py'))


def test_real_size_parameters_and_macs(benchmark):
    init_default_scope('mmseg')
    size = benchmark.model_size(benchmark.load_config('cityscapes'), [64, 64])
    assert size['generator_params_m'] == pytest.approx(87, abs=1.5)
    assert 0 < size['critic_params_m'] < 5
    # the decoder and heads run at full resolution: 128 -> 128 and
    # 128 -> 19 channel 3x3 convolutions over 64 x 64 pixels at least
    assert size['decoder_heads_gmacs'] > 2 * 9 * 128 * 128 * 64 * 64 / 1e9
    assert size['encoder_gmacs'] > 0
    bigger = benchmark.model_size(
        benchmark.load_config('cityscapes'), [128, 128])
    assert bigger['decoder_heads_gmacs'] == pytest.approx(
        4 * size['decoder_heads_gmacs'], rel=0.05)


def test_report(benchmark, tmp_path, capsys):
    out = tmp_path / 'report.json'
    args = benchmark.parse_args([
        '--device', 'cpu', '--batch-size', '2', '--infer-shape', '64', '96',
        '--repeats', '1', '--warmup', '0', '--json-out',
        str(out)
    ])
    args.cfg_options = TINY
    report = benchmark.run(args)
    print(benchmark.format_report(report))
    assert report['shape'] == [64, 64]  # the (overridden) training crop
    train = report['train']
    assert train['critic_ratio'] == pytest.approx(
        train['with_critic']['seconds'] / train['without_critic']['seconds'])
    assert report['size']['generator_params_m'] < 5  # the tiny encoder
    assert report['inference']['images_per_s'] > 0
    table = capsys.readouterr().out
    assert 'with / without critic' in table and 'GMACs' in table
    # the command line writes the json
    assert benchmark.main([
        '--device', 'cpu', '--batch-size', '1', '--shape', '64', '64',
        '--infer-shape', '64', '64', '--repeats', '1', '--warmup', '0',
        '--json-out',
        str(out), '--cfg-options', 'model.backbone.arch=tiny',
        'model.backbone.window_size=[4,4,4,2]', 'model.backbone.img_size=64',
        'model.backbone.pretrained_window_sizes=[0,0,0,0]',
        'model.decoder.in_channels=768'
    ]) == 0
    assert json.loads(out.read_text())['batch_size'] == 1
