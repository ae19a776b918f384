# Copyright (c) mmcast contributors. All rights reserved.
"""The project around the code: its metafile names each of its configs once
and carries the toy results of its README's table; its tests run with the
suite's per-test fixtures."""
import glob
import json
import os.path as osp
import re

import pytest
import yaml

from .conftest import PROJECT_ROOT, REPO_ROOT

# the README's toy table (docs/en/results/tables.json) -> its config
TOY_ROWS = {
    'critic on (`swinmtl_swinv2-tiny_toy`)': 'swinmtl_swinv2-tiny_toy',
    'critic off (`_no-critic`)': 'swinmtl_swinv2-tiny_toy_no-critic',
    'linear depth (`_linear-depth`)': 'swinmtl_swinv2-tiny_toy_linear-depth',
    'no augmentation (`_no-aug`)': 'swinmtl_swinv2-tiny_toy_no-aug',
}
# metafile metric -> the table's column
METRICS = {'mIoU': 'mIoU', 'AbsRel': 'AbsRel', 'RMSE': 'RMSE', 'delta1': 'δ1'}


@pytest.fixture(scope='module')
def metafile() -> dict:
    with open(osp.join(PROJECT_ROOT, 'metafile.yml'), encoding='utf-8') as f:
        return yaml.safe_load(f)


def test_metafile_names_every_config_once(metafile):
    configs = sorted(
        osp.relpath(p, REPO_ROOT)
        for p in glob.glob(osp.join(PROJECT_ROOT, 'configs', '*.py')))
    models = metafile['Models']
    assert sorted(m['Config'] for m in models) == configs
    for model in models:
        assert model['Name'] == osp.splitext(osp.basename(model['Config']))[0]
        assert model['In Collection'] == 'SwinMTL'
    (collection, ) = metafile['Collections']
    for path in (collection['README'], collection['Code']['URL']):
        assert osp.isfile(osp.join(REPO_ROOT, path)), path


def test_metafile_toy_results_are_the_readme_table_means(metafile):
    with open(osp.join(REPO_ROOT, 'docs', 'en', 'results', 'tables.json'),
              encoding='utf-8') as f:
        table = json.load(f)['swinmtl_toy']
    with open(osp.join(PROJECT_ROOT, 'README.md'), encoding='utf-8') as f:
        assert '<!-- table:swinmtl_toy -->' in f.read()
    models = {m['Name']: m for m in metafile['Models']}
    checked = 0
    for row in table['rows']:
        if row[0] not in TOY_ROWS:
            continue
        cells = dict(zip(table['columns'], row))
        results = models[TOY_ROWS[row[0]]]['Results']
        measured = {k: v for r in results for k, v in r['Metrics'].items()}
        for metric, column in METRICS.items():
            mean = float(re.match(r'[\d.]+', cells[column]).group())
            assert measured[metric] == mean, (row[0], metric)
            checked += 1
    assert checked == len(TOY_ROWS) * len(METRICS)


def test_the_suite_fixtures_wrap_these_tests(request):
    """The autouse fixtures of ``tests/conftest.py`` (default scope and
    visualizers left as found) act here too."""
    assert {'module_keeps_default_scope', 'test_keeps_default_scope',
            'test_forgets_its_visualizers'} <= set(request.fixturenames)
