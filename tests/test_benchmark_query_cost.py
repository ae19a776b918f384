# Copyright (c) mmcast contributors. All rights reserved.
"""``tools/benchmark/query_cost.py`` at tiny size: a row per capacity, each
timing a model of that many queries and kept detections, on a batch of the
dense toy world."""
import os.path as osp

from conftest import REPO_ROOT, load_script


def test_a_row_per_capacity_of_its_own_model(capsys):
    bench = load_script(osp.join(REPO_ROOT, 'tools', 'benchmark',
                                 'query_cost.py'))
    batch = bench.cells_batch(1, [64, 96])
    sample = batch['data_samples'][0]
    assert len(sample.gt_instances) >= 50
    assert batch['inputs'][0].shape == (3, 64, 96)
    rows = bench.main(['--queries', '20', '60', '--repeats', '1',
                       '--warmup', '0', '--shape', '64', '96',
                       '--batch-size', '1'])
    assert [(r['queries'], r['max_per_image']) for r in rows] == \
        [(20, 20), (60, 60)]
    assert rows[1]['params'] > rows[0]['params']  # 40 more query weights
    assert all(r['train'] > 0 and r['predict'] > 0 for r in rows)
    out = capsys.readouterr().out
    assert 'batch 1 dense toy images 64x96' in out
    table = [line for line in out.splitlines() if line.startswith('| ')]
    assert [line.split('|')[1].strip() for line in table[1:]] == ['20', '60']
    assert table[1].split('|')[4].strip() == '1.00'
