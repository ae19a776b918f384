# Copyright (c) mmcast contributors. All rights reserved.
"""tools/analysis/ablation_table.py and the module it calls,
mmcast.evaluation.ablation_table: an ablation table from the runs of its
rows (results.json files written here; the real runs' table, with
split-half SEs from their predictions, is gathered in
tests/test_cast_pipeline.py)."""
import json
import os.path as osp
import sys

import pytest

from conftest import REPO_ROOT
from mmcast.evaluation.ablation_table import render_ablation

sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis'))
import ablation_table  # noqa: E402

# the student after stage 2 (results row 'distill') per seed
APS = {
    'fused': [40.0, 38.0, 39.0],
    'uniform': [39.0, 38.5, 36.5],  # -1.0, +0.5, -2.5: mean -1.0
    'class': [41.0, 39.0, 40.0],  # +1 on every seed
}


def _run(tmp_path, row: str, ablation: bool = True) -> str:
    work_dir = tmp_path / row
    work_dir.mkdir()
    result = dict(seeds=[0, 1, 2], rows=dict(distill=dict(per_seed={
        str(s): dict(segm_AP=ap, segm_AP50=2 * ap)
        for s, ap in enumerate(APS[row])})))
    if ablation:
        result['ablation'] = dict(table='sampler', row=row)
    (work_dir / 'results.json').write_text(json.dumps(result))
    return str(work_dir)


def test_rows_are_paired_with_the_reference_beside_the_paper(tmp_path,
                                                             capsys):
    out = str(tmp_path / 'toy_ablation_sampler.json')
    runs = [f'uniform={_run(tmp_path, "uniform")}',
            f'class={_run(tmp_path, "class")}',
            f'fused={_run(tmp_path, "fused", ablation=False)}']
    assert ablation_table.main(['sampler', *runs, '--out', out]) == 0
    with open(out) as f:
        result = json.load(f)
    rows = result['rows']
    assert list(rows) == ['uniform', 'class', 'fused']  # the table's order
    assert rows['uniform']['minus_reference']['per_seed'] == {
        '0': -1.0, '1': 0.5, '2': -2.5}
    assert rows['uniform']['minus_reference']['mean'] == -1.0
    # the paper: uniform 29.4, class-only 31.1, fused 32.2 (both below)
    assert rows['uniform']['paper_minus_reference'] == pytest.approx(-2.8)
    assert rows['uniform']['ordering_holds'] is True
    assert rows['class']['ordering_holds'] is False
    assert 'minus_reference' not in rows['fused']
    assert rows['fused']['per_seed']['1']['segm_AP'] == 38.0
    table = capsys.readouterr().out
    assert table == render_ablation(result)
    assert '| class-only | 41.0 | 39.0 | 40.0 | 40.00 ± 1.00 | +1.00' in table
    assert '**no**' in table.splitlines()[3]


def test_the_runs_are_named_as_given_not_by_this_machines_paths(
        tmp_path, monkeypatch):
    _run(tmp_path, 'uniform')
    _run(tmp_path, 'fused', ablation=False)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / 'table.json'
    assert ablation_table.main(['sampler', 'uniform=./uniform/',
                                'fused=fused', '--out', str(out)]) == 0
    result = json.loads(out.read_text())
    assert {row: result['rows'][row]['work_dir']
            for row in ('uniform', 'fused')} == {'uniform': 'uniform',
                                                 'fused': 'fused'}
    assert str(tmp_path) not in out.read_text()


def test_a_difference_that_rounds_to_zero_has_no_minus_sign(tmp_path):
    # stride 8's teacher against stride 16's in the toy's contrast table:
    # +0.0, +0.1, -0.1 on the seeds, a mean that rounds to -0.0
    result = dict(seeds=[0, 1, 2], rows=dict(row=dict(
        label='a row', per_seed={str(s): dict(segm_AP=30.0) for s in range(3)},
        mean_segm_AP=30.0, std_segm_AP=0.1, paper=None,
        minus_reference=dict(mean=-1e-17, per_seed={
            '0': -0.0, '1': 0.1, '2': -0.1}))))
    line = render_ablation(result).splitlines()[2]
    assert '| +0.00 (+0.0, +0.1, -0.1) |' in line, line
    assert '-0.0' not in line.replace('-0.1', '')


def test_a_run_of_another_row_is_refused(tmp_path, capsys):
    runs = [f'mask={_run(tmp_path, "uniform")}',
            f'fused={_run(tmp_path, "fused", ablation=False)}']
    assert ablation_table.main(['sampler', *runs]) == 2
    assert 'is the run of sampler:uniform, which trains otherwise than ' \
        'sampler:mask' in capsys.readouterr().err
    assert ablation_table.main(['nope', 'x=y']) == 2
    capsys.readouterr()
    out = tmp_path / 'table.json'
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert ablation_table.main(['sampler', f'mask={empty}',
                                '--out', str(out)]) == 2
    assert f'{empty}/results.json: not the results' in capsys.readouterr().err
    (empty / 'results.json').write_text('{"seeds": [0], "rows"')  # cut short
    assert ablation_table.main(['sampler', f'mask={empty}',
                                '--out', str(out)]) == 2
    assert not out.exists()
