# Copyright (c) mmcast contributors. All rights reserved.
"""``projects/swinmtl/tools/swinmtl_step.py`` on CPU.

The size section runs at the real architecture (SwinV2-B: the spec's ~87M
parameters); the step and inference sections, meant for a GPU, run here on
a tiny encoder, under a clock that each training step and each ``predict``
advance by known amounts: its times, rates and ratio must be those, and its
multiply-accumulates those that MMEngine's jit-traced counter finds.
"""
import json
import os.path as osp
import sys

import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.registry import init_default_scope

from projects.swinmtl.swinmtl.models import SwinMTL
from .conftest import PROJECT_ROOT, load_script

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
# what MMEngine's counter counts besides the convolutions and matrix
# products that torch.utils.flop_counter (the benchmark's) counts
NOT_MULTIPLY_ACCUMULATE = {'layer_norm', 'batch_norm', 'upsample_bilinear2d'}


@pytest.fixture(scope='module')
def benchmark():
    return load_script(osp.join(PROJECT_ROOT, 'tools', 'swinmtl_step.py'))


def test_real_size_parameters_and_macs(benchmark):
    init_default_scope('mmseg')
    size = benchmark.model_size(benchmark.load_config('cityscapes'), [64, 64])
    assert size['generator_params_m'] == pytest.approx(87, abs=1.5)
    assert 0 < size['critic_params_m'] < 5
    # the decoder and heads run at full resolution: 128 -> 128 and
    # 128 -> 19 channel 3x3 convolutions over 64 x 64 pixels at least
    assert size['decoder_heads_gmacs'] > 2 * 9 * 128 * 128 * 64 * 64 / 1e9
    bigger = benchmark.model_size(
        benchmark.load_config('cityscapes'), [128, 128])
    assert bigger['decoder_heads_gmacs'] == pytest.approx(
        4 * size['decoder_heads_gmacs'], rel=0.05)
    # 4x the tokens: more encoder work, though less than 4x as much (the
    # windows of the smaller maps are padded to the window size either way)
    assert size['encoder_gmacs'] < bigger['encoder_gmacs'] < \
        4 * size['encoder_gmacs']


class _Clock:
    """The benchmark's ``time``: a ``perf_counter`` that only the ticks of
    the test advance."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class _DecoderAndHeads(torch.nn.Module):
    """The generator after the encoder, for the MAC counter."""

    def __init__(self, generator, size):
        super().__init__()
        self.generator, self.size = generator, size

    def forward(self, features):
        x = self.generator.decoder(features, self.size)
        return self.generator.seg_head(x), self.generator.depth_head(x)


def _jit_gmacs(benchmark, shape):
    """GMACs of the tiny generator's encoder and of its decoder and heads
    for one image: the convolutions and matrix products that MMEngine's
    ``FlopAnalyzer`` (a jit trace, one flop per multiply-accumulate) finds.
    """
    generator = benchmark.build(
        benchmark.load_config('cityscapes', cfg_options=TINY),
        'cpu').eval().generator
    image = torch.zeros(1, 3, *shape)
    with torch.no_grad():
        features = generator.backbone(image)[-1]
    counts = []
    for module, inputs in ((generator.backbone, image),
                           (_DecoderAndHeads(generator, shape), features)):
        analyzer = FlopAnalyzer(module, (inputs, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        by_op = analyzer.by_operator()
        assert set(by_op) - NOT_MULTIPLY_ACCUMULATE <= {
            'conv', 'linear', 'matmul', 'bmm', 'einsum'
        }, by_op
        counts.append(
            sum(v for k, v in by_op.items()
                if k not in NOT_MULTIPLY_ACCUMULATE) / 1e9)
    return counts


def test_report(benchmark, tmp_path, capsys, monkeypatch):
    """A step with the critic ticks 3 s, one without 1 s, a ``predict``
    0.25 s per image: the report must give those."""
    out = tmp_path / 'report.json'
    clock = _Clock()
    # the measuring helper the script shares with real_size_step.py
    monkeypatch.setattr(sys.modules[benchmark.measure.__module__], 'time',
                        clock)
    train_step, predict = SwinMTL.train_step, SwinMTL.predict

    def timed_train_step(self, data, optim_wrapper):
        clock.now += 3.0 if self.with_critic else 1.0
        return train_step(self, data, optim_wrapper)

    def timed_predict(self, inputs, data_samples=None):
        clock.now += 0.25 * len(inputs)
        return predict(self, inputs, data_samples)

    monkeypatch.setattr(SwinMTL, 'train_step', timed_train_step)
    monkeypatch.setattr(SwinMTL, 'predict', timed_predict)
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
    assert train['with_critic']['seconds'] == pytest.approx(3.0)
    assert train['without_critic']['seconds'] == pytest.approx(1.0)
    assert train['critic_ratio'] == pytest.approx(3.0)
    assert report['inference']['images_per_s'] == pytest.approx(4.0)
    size = report['size']
    assert size['generator_params_m'] < 5  # the tiny encoder
    encoder, rest = _jit_gmacs(benchmark, [64, 64])
    assert size['encoder_gmacs'] == pytest.approx(encoder, rel=0.01)
    assert size['decoder_heads_gmacs'] == pytest.approx(rest, rel=0.01)
    table = capsys.readouterr().out
    assert '| with / without critic | 3.00× |' in table
    assert '| inference, 64×96, batch 1 | 4.00 images/s |' in table
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
