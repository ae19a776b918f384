# Copyright (c) mmcast contributors. All rights reserved.
"""The documentation builds, its links resolve and its generated tables
equal their data files (``tools/docs/``); each check fails on a planted
fault."""
import json
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import REPO_ROOT
from mmcast.apis.pipeline.stage_graph import GRAPH

sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'docs'))
import check_links  # noqa: E402
import update_tables  # noqa: E402


def _mkdocs(root: str, site: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-m', 'mkdocs', 'build', '--strict', '--config-file',
         osp.join(root, 'mkdocs.yml'), '--site-dir', site],
        capture_output=True, text=True)


def _copy_docs(tmp_path) -> str:
    """The files the docs and the tables are made from, in a new root."""
    root = str(tmp_path / 'repo')
    shutil.copytree(osp.join(REPO_ROOT, 'docs'), osp.join(root, 'docs'))
    for name in ('README.md', 'mkdocs.yml', 'model-index.yml'):
        shutil.copy(osp.join(REPO_ROOT, name), root)
    with open(osp.join(REPO_ROOT, 'model-index.yml')) as f:
        metafiles = yaml.safe_load(f)['Import']
    for path in metafiles + [update_tables.STAGE_TABLE, GRAPH] + [
            f for f in update_tables.markdown_files(REPO_ROOT)
            if f.startswith('configs/')]:
        dst = osp.join(root, path)
        shutil.os.makedirs(osp.dirname(dst), exist_ok=True)
        shutil.copy(osp.join(REPO_ROOT, path), dst)
    return root


def _edit(path: str, old: str, new: str) -> None:
    with open(path, encoding='utf-8') as f:
        text = f.read()
    assert old in text, f'{old!r} not in {path}'
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text.replace(old, new, 1))


def test_mkdocs_builds_strict(tmp_path):
    result = _mkdocs(REPO_ROOT, str(tmp_path / 'site'))
    assert result.returncode == 0, result.stderr
    page = tmp_path / 'site' / 'en' / 'notes' / 'toy_protocol' / 'index.html'
    # the generated results table is part of the built page
    assert '40.8 / 70.2' in page.read_text(encoding='utf-8')


def test_mkdocs_strict_fails_on_a_broken_link(tmp_path):
    root = _copy_docs(tmp_path)
    _edit(osp.join(root, 'docs/en/notes/tests.md'), '# Tests\n',
          '# Tests\n\nSee [the guide](../user_guides/no_such_page.md).\n')
    result = _mkdocs(root, str(tmp_path / 'site'))
    assert result.returncode != 0
    assert 'no_such_page.md' in result.stderr


def test_every_link_of_the_repository_resolves():
    assert check_links.check_repository(REPO_ROOT) == []


@pytest.mark.parametrize('link, why', [
    ('docs/en/missing.md', 'no such file in the repository'),
    ('docs/en/page.md#no-such-heading', 'no heading #no-such-heading'),
    ('#nowhere', 'no heading #nowhere'),
    ('work_dirs/cast_toy/results.md', 'no such file in the repository'),
    ('../outside.md', 'outside the repository'),
])
def test_the_link_checker_finds_a_planted_broken_link(link, why):
    files = {'README.md', 'docs/en/page.md', 'docs/figures/a.png'}
    pages = {'docs/en/page.md': '# Page\n\n## Mixed precision (AMP)\n'}
    text = ('# Top\n\n[ok](docs/en/page.md#mixed-precision-amp) '
            '![pic](docs/figures/a.png) [dir](docs/en/) [top](#top)\n'
            '`[in code](nowhere.md)`\n```\n[fenced](nowhere.md)\n```\n'
            f'a [planted]({link}) link\n')
    problems = check_links.check_text('README.md', text, files, pages.get)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f'README.md:8: link {link}: {why}')


def test_anchors_in_github_and_mkdocs_spelling():
    text = ('## SwinMTL: depth + semantic segmentation\n'
            '## 2026-11-25 Results of `make demo`\n## Building mmcv 2.1.0\n'
            '## Notes\n## Notes\n')
    anchors = check_links.heading_anchors(text)
    assert {'swinmtl-depth--semantic-segmentation',  # GitHub
            'swinmtl-depth-semantic-segmentation',  # MkDocs
            '2026-11-25-results-of-make-demo', 'building-mmcv-210',
            'notes', 'notes-1'} <= anchors
    assert 'results-of-make-demo' not in anchors


def test_generated_tables_are_current(capsys):
    assert update_tables.main(['--check']) == 0, capsys.readouterr().out


def test_tables_check_fails_on_an_edited_block_and_rewrites_it(
        tmp_path, capsys):
    root = _copy_docs(tmp_path)
    readme = osp.join(root, 'README.md')
    _edit(readme, '| 34.3 / 64.3 |', '| 35.3 / 64.3 |')
    assert update_tables.main(['--check', '--root', root]) == 1
    out = capsys.readouterr().out
    assert '-| CAST student after stage 3 | 35.3 / 64.3' in out
    assert '+| CAST student after stage 3 | 34.3 / 64.3' in out
    assert 'README.md' in out
    # a changed data file changes every table made from it
    zoo = osp.join(root, 'configs/mmcast/cast/README.md')
    assert update_tables.main(['--root', root]) == 0
    data = osp.join(root, 'docs/en/results/toy_demo.json')
    with open(data, encoding='utf-8') as f:
        result = json.load(f)
    result['rows']['finetune']['per_seed']['0']['segm_AP'] = 34.7
    with open(data, 'w', encoding='utf-8') as f:
        json.dump(result, f)
    assert update_tables.main(['--check', '--root', root]) == 1
    assert update_tables.main(['--root', root]) == 0
    with open(readme, encoding='utf-8') as f:
        assert '| CAST student after stage 3 | 34.7 / 64.3 |' in f.read()
    with open(zoo, encoding='utf-8') as f:
        assert '| 34.7 / 32.8 / 34.8 |' in f.read()
    assert update_tables.main(['--check', '--root', root]) == 0


@pytest.mark.parametrize('name', update_tables.PIPELINE_RESULTS)
def test_each_pipeline_results_file_drives_its_own_table(tmp_path, name):
    """Editing one run's results.json changes that run's table and
    leaves the other pipeline tables as they are (in the README or the
    docs)."""
    root = _copy_docs(tmp_path)
    data = osp.join(root, update_tables.RESULTS_DIR, f'{name}.json')
    with open(data, encoding='utf-8') as f:
        result = json.load(f)
    cell = result['rows']['finetune']['per_seed']['0']
    cell['segm_AP'] = 99.9
    with open(data, 'w', encoding='utf-8') as f:
        json.dump(result, f)
    before = {n: update_tables.render_results(update_tables._load_json(
        REPO_ROOT, f'{n}.json')) for n in update_tables.PIPELINE_RESULTS}
    assert update_tables.main(['--check', '--root', root]) == 1
    assert update_tables.main(['--root', root]) == 0
    docs = ''
    for md in update_tables.markdown_files(root):
        with open(osp.join(root, md), encoding='utf-8') as f:
            docs += f.read()
    row = f'| CAST student after stage 3 | 99.9 / {cell["segm_AP50"]} |'
    assert row in docs
    for other, table in before.items():
        if other != name:
            assert table in docs, other



def test_the_student_pair_table_follows_both_results_files(tmp_path):
    """The two students' table is rendered from their two results files:
    one seed's stage-3 AP edited in the second moves its cell and the
    paired difference of that seed; seeds that differ are refused."""
    (name, (first, second)), = update_tables.STUDENT_PAIRS.items()
    root = _copy_docs(tmp_path)
    data = osp.join(root, update_tables.RESULTS_DIR, f'{second}.json')
    with open(data, encoding='utf-8') as f:
        result = json.load(f)
    result['rows']['finetune']['per_seed']['0']['segm_AP'] = 99.9
    with open(data, 'w', encoding='utf-8') as f:
        json.dump(result, f)
    assert update_tables.main(['--root', root]) == 0
    ours = update_tables._load_json(root, f'{first}.json')
    table = update_tables.render_student_pair(ours, result)
    stage3 = ours['rows']['finetune']['per_seed']['0']['segm_AP']
    lines = {line.split(' | ')[0][2:]: line.split(' | ')[1:]
             for line in table.splitlines()[2:]}
    assert lines[f'{result["student"]}: CAST, after stage 3'][0] == '99.9'
    assert lines[f'{ours["student"]} − {result["student"]}, stage 3'][0] \
        == f'{stage3 - 99.9:+.1f}'
    docs = ''
    for md in update_tables.markdown_files(root):
        with open(osp.join(root, md), encoding='utf-8') as f:
            docs += f.read()
    assert table in docs
    with pytest.raises(SystemExit, match=r'seeds \[0, 1, 2\] and \[0, 1\]'):
        update_tables.render_student_pair(ours, dict(result, seeds=[0, 1]))

def test_an_unknown_table_name_is_refused(tmp_path):
    root = _copy_docs(tmp_path)
    _edit(osp.join(root, 'docs/en/notes/tests.md'), '# Tests\n',
          '# Tests\n\n<!-- table:no_such_table -->\n<!-- /table -->\n')
    with pytest.raises(SystemExit, match="tests.md: unknown table "
                       "'no_such_table'"):
        update_tables.main(['--check', '--root', root])


def test_toy_results_agree_with_the_metafiles():
    """The metafiles' toy Results (mim search) are the means of the
    per-seed values the tables are made from."""
    models = update_tables.load_metafiles(REPO_ROOT)
    with open(osp.join(REPO_ROOT, 'docs/en/results/toy_demo.json')) as f:
        toy = json.load(f)
    with open(osp.join(REPO_ROOT, 'docs/en/results/model_zoo.json')) as f:
        rows = json.load(f)['toy']['rows']
    checked = 0
    for spec in rows:
        per_seed = toy['rows'][spec['toy_row']]['per_seed'].values()
        metrics = models[spec['model']]['Results'][0]['Metrics']
        for key, metric in (('segm_AP', 'mask AP'), ('segm_AP50', 'AP50')):
            mean = sum(c[key] for c in per_seed) / len(per_seed)
            assert metrics[metric] == pytest.approx(mean, abs=0.006), \
                (spec['model'], metric)
            checked += 1
    assert checked == 14


# what the deviations page points at, by the text of the line it names
DEVIATION_LINES = {
    'configs/mmcast/_base_/datasets/semi_cityscapes_instance.py':
    ("labeled_split = 'perc_10'", "dict(type='PhotoMetricDistortion')",
     'source_ratio=[1, 1]'),
    'configs/mmcast/_base_/models/cast_student_dinov2-s_dpt.py':
    ("sampler='fused'", 'neg_margin=0.5', "negatives_from='global'",
     'jitter_prob=0.8'),
    'configs/mmcast/_base_/schedules/cast_90k.py':
    ("'backbone.readout_projects'", 'base_batch_size=8'),
    'mmcast/models/losses/instance_aware_pixel_contrast_loss.py':
    ("negative_keys: str = 'weak'", ),
    'mmcast/apis/pipeline/settings.py':
    ("DEFAULT_TEACHER = 'mask2former'", 'PRIMARY_METRIC = '),
    'mmcast/engine/batch_scaling.py': ('def scaled_lr', ),
    'configs/mmcast/guided_distillation/guided-distillation_dinov2-s_coco.py':
    ('max_iters = 368750', 'burn_in_iters = 50000'),
}


def test_deviations_name_the_lines_that_set_them():
    """Every ``file:line`` of the deviations page is a line of a file of
    the repository; the key ones hold what the page says they set."""
    import re

    path = osp.join(REPO_ROOT, 'docs', 'en', 'notes', 'deviations.md')
    with open(path, encoding='utf-8') as f:
        refs = re.findall(r'`([\w./-]+\.py):(\d+)`', f.read())
    assert len(refs) >= 30
    found = {}
    for name, number in refs:
        with open(osp.join(REPO_ROOT, name), encoding='utf-8') as f:
            lines = f.read().splitlines()
        assert 1 <= int(number) <= len(lines), (name, number)
        line = lines[int(number) - 1]
        assert line.strip(), (name, number)
        found.setdefault(name, []).append(line)
    for name, texts in DEVIATION_LINES.items():
        for text in texts:
            assert any(text in line for line in found.get(name, [])), \
                (name, text)
