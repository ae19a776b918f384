# Copyright (c) mmcast contributors. All rights reserved.
"""The real-size smoke and every benchmark, on CUDA; their tables are
printed.

* ``tools/smoke_real_configs.py --quick --device cuda``: the Cityscapes
  stage chain, Guided Distillation, the DINOv3-S student's stage 2 and the
  teachers' adaptations at their own sizes and AMP, with the step time,
  images/s and peak memory of each (meant to take at most 5 minutes; not
  measured on a GPU yet);
* ``tools/smoke_real_configs.py --device cuda``: every real-size config at
  its own sizes, queries, points and AMP (512x1024 images), see its
  docstring; slow (tens of minutes).
* every ``tools/benchmark/*.py`` and ``projects/*/tools/*_step.py`` with
  ``--device cuda`` (a new benchmark is picked up by its file name), with
  the extra arguments of :data:`BENCHMARK_ARGS`; ``teacher_throughput.py``
  runs the tiny box-prompted teacher on the toy data.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY_TEACHER = 'configs/mmcast/toy/teacher_gdino-tiny_sam2-tiny_toy.py'
#: mmcast's benchmarks and the projects' (SwinMTL's step), from the root
BENCHMARKS = sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'tools', 'benchmark', '*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'projects', '*', 'tools', '*_step.py')))
#: extra arguments (fewer repeats: the tables, not tight medians)
BENCHMARK_ARGS = {
    'real_size_step.py': ['--repeats', '3', '--warmup', '1'],
    'swinmtl_step.py': ['--repeats', '3', '--warmup', '1'],
}


def run_and_print(command, capsys, env=None) -> subprocess.CompletedProcess:
    """Run ``command`` in the repository; print its output uncaptured."""
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True,
                          text=True, env=env)
    with capsys.disabled():
        print(f'\n$ {" ".join(command)}\n{proc.stdout}', flush=True)
        if proc.returncode:
            print(proc.stderr[-8000:], flush=True)
    return proc


def test_quick_real_size_smoke_on_cuda(tmp_path, capsys):
    work_dir = tmp_path / 'quick'
    proc = run_and_print(
        [sys.executable, 'tools/smoke_real_configs.py', '--quick',
         '--device', 'cuda', '--keep-going', '--work-dir',
         str(work_dir)], capsys)
    summary = json.loads((work_dir / 'summary.json').read_text())
    assert summary['quick'] and summary['device'] == 'cuda'
    failed = [r['config'] for r in summary['results'] if r['status'] != 'ok']
    assert not failed and proc.returncode == 0, failed
    for result in summary['results']:  # each run's speed, from its log
        assert result['step_seconds'] > 0, result['config']
        assert result['images_per_second'] > 0, result['config']
        assert result['peak_memory_mb'] > 0, result['config']


def test_real_size_smoke_on_cuda(tmp_path, capsys):
    work_dir = tmp_path / 'smoke'
    proc = run_and_print(
        [sys.executable, 'tools/smoke_real_configs.py', '--device', 'cuda',
         '--keep-going', '--work-dir', str(work_dir)], capsys)
    summary = json.loads((work_dir / 'summary.json').read_text())
    assert summary['device'] == 'cuda' and summary['image_size'] == [512,
                                                                     1024]
    failed = [r['config'] for r in summary['results'] if r['status'] != 'ok']
    assert not failed and proc.returncode == 0, failed


@pytest.fixture(scope='module')
def toy_teacher(tmp_path_factory):
    """Arguments of teacher_throughput.py: the tiny teacher on toy data."""
    from mmcast.toy.worlds import make_toy_dataset
    from mmcast.toy.tiny_teachers import build_tiny_teacher_assets
    root = tmp_path_factory.mktemp('throughput')
    assets = build_tiny_teacher_assets(str(root / 'tiny'))
    data = str(root / 'toy')
    make_toy_dataset(data, num_train=8, num_val=2, height=256, width=512,
                     seed=0, show_progress=False)
    args = [
        TOY_TEACHER, assets['teacher_checkpoint'], '--unlabeled-ann',
        osp.join(data, 'annotations',
                 'instancesonly_filtered_gtFine_train.json'),
        '--data-root', data + '/', '--img-prefix', 'leftImg8bit/train/',
        '--num-images', '8', '--batch-size', '2'
    ]
    return args, dict(os.environ, MMCAST_TINY_TEACHERS=assets['root'])


@pytest.mark.parametrize('script', BENCHMARKS)
def test_benchmark_on_cuda(script, request, capsys):
    args, env = [], None
    name = osp.basename(script)
    if name == 'teacher_throughput.py':
        args, env = request.getfixturevalue('toy_teacher')
    proc = run_and_print(
        [sys.executable, script] + args + ['--device', 'cuda'] +
        BENCHMARK_ARGS.get(name, []), capsys, env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip()  # its report
