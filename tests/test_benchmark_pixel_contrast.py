# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/benchmark/pixel_contrast.py`` on tiny cases, and its parts.

The script's ``main`` runs as the command line would (CPU, one thread,
forked children for the memory peaks), under a clock that the test's ticks
advance: its tables must hold a row per implementation and case with the
times and time ratios of those ticks, the agreement check must have passed
for every case the authors' formulation ran on, and the authors' skip must
show.
"""
import os
import os.path as osp
import re
import sys

import pytest
import torch

from conftest import load_script

CASES = ('2x4x6', '3x5x7')


@pytest.fixture(scope='module')
def benchmark(repo_root):
    module = load_script(
        osp.join(repo_root, 'tools', 'benchmark', 'pixel_contrast.py'))
    # the forked children pickle the script's result types by module name
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def _rows(out: str, case: str):
    batch, h, w = case.split('x')
    prefix = re.compile(rf'^\| - \| {batch} \| {h}x{w} \| ')
    return [[c.strip() for c in line.strip('|').split('|')]
            for line in out.splitlines() if prefix.match(line)]


class _Clock:
    """The script's ``time``: a ``perf_counter`` that only the ticks of the
    test advance, so that every time the tables print is known."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class _TickOnBackward(torch.autograd.Function):
    """The identity, whose backward advances a :class:`_Clock`."""

    @staticmethod
    def forward(ctx, x, clock, seconds):
        ctx.clock, ctx.seconds = clock, seconds
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        ctx.clock.now += ctx.seconds
        return grad, None, None


# seconds of (forward, backward) of each implementation under the clock
TICKS = dict(authors=(0.004, 0.002), exact=(0.002, 0.001),
             rejection=(0.0015, 0.0005))


def _dense_mean_dissimilarity(benchmark, case):
    """Mean ``max(0, 1 - <y~_p, y~_q>)`` over every anchor p and every pixel
    q of the other images: the mean s_deb of a draw that takes all
    candidates (R = 200 > (B - 1) * N here)."""
    args = benchmark.parse_args(['--device', 'cpu'])
    inputs = benchmark.make_inputs(case, args.dim, torch.device('cpu'))
    y = benchmark.build_loss(args, 'exact').sampling_features(
        inputs['mask_logits'], inputs['cls_logits'], case[1:])
    batch, num_pixels = y.shape[:2]
    total = count = 0.0
    for b in range(batch):
        for o in range(batch):
            if o != b:
                total += float((1 - y[b] @ y[o].t()).clamp(min=0).sum())
                count += num_pixels * num_pixels
    return total / count


def test_script_on_tiny_cases(benchmark, capsys, monkeypatch):
    """Under a clock that each implementation's forward and backward
    advance by known amounts (:data:`TICKS`), every time and time ratio
    printed is known; the mean s_deb of the negatives, with every
    candidate drawn, is the dense mean computed here."""
    clock = _Clock()
    monkeypatch.setattr(benchmark, 'time', clock)
    authors_step, mmcast_step = benchmark.authors_step, benchmark.mmcast_step

    def ticking(step, name):
        def run(loss, **inputs):
            forward, backward = TICKS[name(loss)]
            out = step(loss, **inputs)
            clock.now += forward
            return _TickOnBackward.apply(out, clock, backward)
        return run

    monkeypatch.setattr(benchmark, 'authors_step',
                        ticking(authors_step, lambda loss: 'authors'))
    monkeypatch.setattr(benchmark, 'mmcast_step',
                        ticking(mmcast_step, lambda loss: loss.draw))
    # in this process: a test process whose autograd has started threads
    # cannot run autograd in a forked child (a fresh benchmark process can;
    # the fork itself: test_measurements_run_in_a_forked_child)
    monkeypatch.setattr(benchmark, 'isolated',
                        lambda fn, device, *args: fn(*args))
    # --max-authors-gib between the estimates of the authors' formulation
    # (2x4x6: 0.9 MiB, 3x5x7: 4.8 MiB) skips it on 3x5x7 only.
    threads = torch.get_num_threads()
    try:
        assert benchmark.main([
            '--device', 'cpu', '--cases', *CASES, '--skip-model', '--repeats',
            '1', '--max-authors-gib',
            str(2 / 1024)
        ]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert 'torch threads: 1' in out and 'sampler=fused_class' in out
    assert 'Share of a tiny Mask2Former' not in out  # --skip-model
    ms = {name: f'{1e3 * sum(ticks):.1f} ms' for name, ticks in TICKS.items()}

    # 3 implementation rows + 1 ratio row per case
    checked = _rows(out, '2x4x6')
    assert len(checked) == 4, out
    s_deb = _dense_mean_dissimilarity(benchmark, (2, 4, 6))
    for cells, impl in zip(checked, benchmark.IMPLS):
        assert cells[5] == benchmark.IMPL_NAMES[impl]
        assert cells[6:8] == ['1', ms[impl]]  # runs, time
        assert cells[8].endswith(' MiB')
        assert float(cells[9]) == pytest.approx(s_deb, abs=1e-4)
    assert 'reference' in checked[0][10]
    for cells in checked[1:3]:
        rel = re.fullmatch(
            r'agrees: loss rel\. diff (\S+), gradient \(no hinge\) (\S+)',
            cells[10])
        assert rel and float(rel.group(1)) <= 1e-4, cells
        assert float(rel.group(2)) <= 1e-3, cells
    # time authors/exact, authors/rejection, exact/rejection
    assert checked[3][3:6] == ['2.00', '3.00', '1.50']

    skipped = _rows(out, '3x5x7')
    assert len(skipped) == 4, out
    assert skipped[0][6:8] == ['-', 'skipped: needs 4.8 MiB']
    for cells, impl in zip(skipped[1:3], benchmark.IMPLS[1:]):
        assert cells[6:8] == ['1', ms[impl]]
        assert cells[9:] == ['-', 'not checked (authors skipped)']
    assert skipped[3][3:6] == ['-', '-', '1.50']


def _pid_and_sum(*values):
    return os.getpid(), sum(values)


def _fails():
    raise ValueError('no luck')


def test_measurements_run_in_a_forked_child(benchmark):
    """On CPU each measurement runs in a child process; its result comes
    back, its error is raised in the parent with the child's traceback."""
    cpu = torch.device('cpu')
    pid, total = benchmark.isolated(_pid_and_sum, cpu, 2, 3)
    assert total == 5 and pid != os.getpid()
    with pytest.raises(RuntimeError, match='_fails failed in the child'
                       '(.|\n)*no luck'):
        benchmark.isolated(_fails, cpu)


def test_agreement_check(benchmark):
    """Given the authors' negatives (the reference of
    :mod:`mmcast.testing`), both mmcast draws give the authors' loss, and
    each draw's mean s_deb is reported."""
    args = benchmark.parse_args(['--device', 'cpu', '--num-negatives', '5'])
    agree = benchmark.check_agreement(args, (3, 4, 5), torch.device('cpu'))
    assert max(agree.rel_diff.values()) <= 1e-4
    assert set(agree.mean_deb) == set(benchmark.IMPLS)


def test_targets_and_estimate(benchmark, capsys):
    timing = benchmark.Timing
    benchmark.print_targets({
        (8, 64, 128):
        dict(
            authors=timing(1.0, 10, 1),
            exact=timing(0.1, 5, 3),
            rejection=timing(0.4, 5, 3)),
        (8, 128, 256):
        dict(
            authors=None,
            exact=timing(0.09, 2**30, 3),
            rejection=timing(0.09, 3 * 2**30, 3))
    })
    lines = capsys.readouterr().out.splitlines()
    assert lines[-4].endswith('| 10.00 | yes |')
    assert lines[-3].endswith('| 2.50 | no |')
    assert lines[-2].endswith('| 90.0 ms, 1.00 GiB | yes |')
    assert lines[-1].endswith('| no |')
    # 4 (N, (B-1)N) float32 matrices + (B + 1) (N, R, D) float32 keys
    assert benchmark.authors_bytes((2, 3, 4), 200, 8) == \
        4 * 12 * 12 * 4 + 3 * 12 * 12 * 8 * 4
    assert [case for _, case in benchmark.student_levels()] == [(2, 19, 37),
                                                                (2, 38, 74),
                                                                (2, 76, 148),
                                                                (2, 152, 296)]
