# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/benchmark/inference.py --deploy --profile --labeling`` at toy
size on the CPU: the deployment variants at two batch sizes, the static
ones with bool and with packed masks side by side, with images/s,
post-processing share, achieved TFLOP/s (from the network's MACs) and the
top operators of each; the CUDA-graph variant is left out without CUDA;
pseudo-labelling at two batch sizes gives the same pseudo-labels. (The
compiled and ``.pt2`` variants run the code of ``tests/test_static_deploy
.py`` and ``tests/test_pt2_deploy.py``; their compiles are left to those.)
"""
import json
import os.path as osp

import pytest

from conftest import REPO_ROOT, load_script


def test_deploy_table_profiles_and_labelling(tmp_path, capsys):
    benchmark = load_script(
        osp.join(REPO_ROOT, 'tools', 'benchmark', 'inference.py'))
    out = tmp_path / 'deploy.json'
    assert benchmark.main([
        '--device', 'cpu', '--deploy', '--profile', '--profile-top', '3',
        '--models', 'student toy', '--shapes', '64', '128',
        '--batch-sizes', '1', '2', '--deploy-variants', 'eager fp32',
        'eager half', 'half+compile+cuda graph', 'onnxruntime',
        '--mask-formats', 'bool', 'packed', '--repeats', '1', '--warmup',
        '0', '--labeling',
        '--labeling-images', '2', '--labeling-batch-sizes', '1', '2',
        '--assets-dir', str(tmp_path / 'assets'), '--json-out', str(out)
    ]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    rows = report['deploy']
    assert [(r['variant'], r['mask_format'], r['batch']) for r in rows] == [
        (v, f, b) for b in (1, 2)
        for v, f in (('eager fp32', 'bool'), ('eager fp32', 'packed'),
                     ('eager half', 'bool'), ('eager half', 'packed'),
                     ('onnxruntime', None))]
    macs = rows[0]['gmacs_per_image'] * 1e9
    assert macs > 0
    for row in rows:
        assert row['images_per_s'] == pytest.approx(
            row['batch'] / row['seconds'])
        assert row['tflops'] == pytest.approx(
            2 * macs * row['batch'] / row['seconds'] / 1e12)
        assert 0 < row['postprocess_share'] < 1
        assert row['precision'] == {'eager half': 'bf16'}.get(
            row['variant'], 'fp32')
        label = row['variant'] + (f" ({row['providers'][0]})" if row.get(
            'providers') else '') + (f", {row['mask_format']} masks"
                                     if row['mask_format'] else '')
        assert f"| {label} | {row['precision']} |" in printed
    assert rows[4]['providers'][0] == 'CPUExecutionProvider'
    assert [(p['variant'], p['batch']) for p in report['profiles']] == [
        (r['variant'], r['batch']) for r in rows]
    for profile in report['profiles']:
        assert len(profile['top']) == 3
        assert all(0 < op['share'] <= 1 and op['op'] for op in profile['top'])
    assert 'top operators, eager half, packed masks, batch 2, 64×128:' \
        in printed
    labeling = report['labeling']
    assert len(labeling) == 6 and {r['batch'] for r in labeling} == {1, 2}
    for teacher in {r['teacher'] for r in labeling}:
        one, two = [r for r in labeling if r['teacher'] == teacher]
        assert one['images_per_s'] > 0 and two['images_per_s'] > 0
        assert one['pseudo_labels_per_image'] == \
            two['pseudo_labels_per_image']


def test_deploy_ap_rows(toy_data_root, tmp_path, monkeypatch, capsys):
    """``tools/analysis/deploy_ap.py`` evaluates the model's predict and
    the static predict at each precision and score resolution with
    MMDetection's CocoMetric (random weights here: the rows, not their
    values, are checked; the measured table is in the deployment guide)."""
    from test_static_deploy import STUDENT, write_student_checkpoint
    monkeypatch.setenv('MMCAST_TOY_ROOT', toy_data_root + '/')
    checkpoint = str(tmp_path / 'student.pth')
    write_student_checkpoint(checkpoint)
    script = load_script(osp.join(REPO_ROOT, 'tools', 'analysis',
                                  'deploy_ap.py'))
    out = tmp_path / 'ap.json'
    assert script.main([osp.join(REPO_ROOT, STUDENT), checkpoint,
                        '--precisions', 'float32', 'bfloat16',
                        '--scale', '128', '64', '--json-out',
                        str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    assert list(results) == [
        'predict (lean fusion head)',
        'static float32, scores at input resolution',
        'static float32, scores at low resolution',
        'static bfloat16, scores at input resolution',
        'static bfloat16, scores at low resolution']
    for name, values in results.items():
        assert set(values) == {'segm_mAP', 'segm_mAP_50'}
        assert f'| {name} |' in printed
