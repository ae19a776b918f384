# Copyright (c) mmcast contributors. All rights reserved.
"""The table of stage configs (``configs/mmcast/stages.json``) and the
configs' names: OpenMMLab's convention in ``configs/mmcast/cast/``, the
short names of ``configs/mmcast/`` written from the table as aliases that
load to the same config.

Each row of the table names a config; a CAST config of a shipped dataset
has a short name, whose file is ``_base_ = './cast/<name>.py'`` and that
config's default ``work_dir`` (``tools/misc/config_aliases.py``), so
commands, the pipeline (which runs the short names, sets ``--work-dir`` and
keeps its work dirs and dumped config names) and the conventional names
all train the same model, and stages run one after another by either name
find each other's checkpoints. The pipeline finds every stage of every
dataset and teacher in the table, and the metafile lists its configs.
"""
import glob
import os.path as osp
import re
import subprocess
import sys
from functools import lru_cache

import pytest
import yaml
from mmengine.config import Config

from conftest import REPO_ROOT, config_names, is_config_alias
from mmcast.apis.pipeline import PipelineError, find_row, stage_rows
from mmcast.apis.pipeline.settings import TEACHERS
from mmcast.apis.pipeline.stage_graph import stage_keys
from mmcast.apis.pipeline.stage_table import alias_text

CONFIG_DIR = osp.join(REPO_ROOT, 'configs', 'mmcast')
CAST_DIR = osp.join(CONFIG_DIR, 'cast')
NAMES = config_names()
# {algorithm}_{model components}_{gpus}xb{batch}-{schedule}_{dataset}
CONVENTION = re.compile(
    r'^(?P<algorithm>cast-(adapt-teacher|adapt-teacher-selftrain|distill|'
    r'finetune)|supervised)'
    r'(?P<components>(_[a-z0-9][a-z0-9.+-]*)+)'
    r'_(?P<gpus>\d+)xb(?P<batch>\d+)-(?P<iters>\d+)(?P<unit>k|it)'
    r'_(?P<dataset>cityscapes|ade20k|coco|toy)(?P<semi>-semi)?'
    r'-(?P<percent>\d+)p$')
# What the map's short names are made of: <stage>_<dataset>[_<variant>]
SHORT = re.compile(r'^(adapt_teacher|adapt_teacher_selftrain|distill|'
                   r'finetune|supervised_student)_(cityscapes|ade20k|coco|'
                   r'toy)(_[\w-]+)?$')
ROWS = {row['short']: row for row in stage_rows(REPO_ROOT) if row['short']}


@lru_cache(maxsize=None)
def _dict(path: str) -> dict:
    return Config.fromfile(path).to_dict()


def loads_alike(alias: str, target: str) -> bool:
    """Whether two config files load to the same config, but for the
    alias's ``work_dir``.

    ``Config.to_dict()`` holds every variable of the config and none of
    the file's own attributes (``filename``, ``text``), so two files are
    alike iff their dicts are equal: with the same work-dir hand-offs
    (pseudo-label files, checkpoints of the previous stage). ``work_dir``
    is what ``--work-dir`` sets; an alias sets it to its target's default
    (:func:`test_aliases_train_where_the_next_stage_looks`).
    """
    ours, theirs = dict(_dict(alias)), dict(_dict(target))
    ours.pop('work_dir', None)
    theirs.pop('work_dir', None)
    return ours == theirs


def test_the_map_names_short_and_conventional_configs_one_to_one():
    assert len(NAMES) >= 40
    assert len(set(NAMES.values())) == len(NAMES)
    for short, name in NAMES.items():
        assert SHORT.match(short), short
        assert CONVENTION.match(name), name


def test_every_stage_config_has_an_alias_and_every_alias_a_target():
    in_cast = {
        osp.splitext(osp.basename(p))[0]
        for p in glob.glob(osp.join(CAST_DIR, '*.py'))
    }
    assert in_cast == set(NAMES.values())
    aliases = {
        osp.splitext(osp.basename(p))[0]
        for p in glob.glob(osp.join(CONFIG_DIR, '*.py'))
    }
    assert aliases == set(NAMES)
    for short in NAMES:
        assert is_config_alias(f'configs/mmcast/{short}.py')
    assert not is_config_alias(
        f'configs/mmcast/cast/{NAMES["distill_toy"]}.py')
    assert not is_config_alias(
        'configs/mmcast/custom/distill_custom-cpu.py')


@pytest.mark.parametrize('short', sorted(NAMES))
def test_alias_is_only_a_base_on_its_target(short):
    with open(osp.join(CONFIG_DIR, f'{short}.py'), encoding='utf-8') as f:
        assert f.read() == alias_text(ROWS[short]) == (
            '# Short name of the config below (generated from '
            'configs/mmcast/stages.json\n'
            '# by tools/misc/config_aliases.py); it trains in that config\'s '
            'work dir,\n'
            '# where the next stage\'s config looks for its checkpoint.\n'
            f"_base_ = './cast/{NAMES[short]}.py'  # noqa: E501\n"
            f"work_dir = './work_dirs/{NAMES[short]}'  # noqa: E501\n")


def test_the_alias_files_are_the_tables():
    """``tools/misc/config_aliases.py --check``: every short name's file is
    written from the table, and no other file is in configs/mmcast/."""
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'misc',
                                  'config_aliases.py'), '--check'],
        cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_table_has_one_config_per_stage_and_every_one_exists():
    rows = stage_rows(REPO_ROOT)
    keys = [(r['dataset'], r['stage'], r['teacher'], r['variant'])
            for r in rows]
    assert len(keys) == len(set(keys))
    for row in rows:
        assert osp.isfile(osp.join(CONFIG_DIR, f'{row["config"]}.py')), row
        assert row['stage'] in stage_keys(), row
        assert row['teacher'] in (None, *TEACHERS), row
    # every stage the pipeline runs, for every dataset and teacher it has
    for ds in ('toy', 'cityscapes', 'ade20k', 'coco', 'custom',
               'custom-cpu'):
        for stage in ('adapt_teacher', 'adapt_teacher_selftrain', 'distill'):
            assert find_row(ds, stage, 'mask2former')
        for stage in ('finetune', 'supervised_student'):
            assert find_row(ds, stage)
    for teacher in TEACHERS:
        assert find_row('toy', 'toy_foundation', teacher)
        assert find_row('toy', 'distill', teacher)
    with pytest.raises(PipelineError, match='no config for stage '
                       'guided_distillation of ade20k'):
        find_row('ade20k', 'guided_distillation')


def test_the_metafile_lists_the_tables_cast_configs():
    """The mim metafile beside the CAST configs: one model per config of
    ``configs/mmcast/cast/``, each a row of the table (and the toy, custom
    and teacher configs beside them)."""
    with open(osp.join(CAST_DIR, 'metafile.yml'), encoding='utf-8') as f:
        models = yaml.safe_load(f)['Models']
    listed = {m['Config'] for m in models if '/cast/' in m['Config']}
    in_table = {f'configs/mmcast/{r["config"]}.py'
                for r in stage_rows(REPO_ROOT)
                if r['config'].startswith('cast/')}
    assert listed == in_table
    with open(osp.join(REPO_ROOT, 'model-index.yml'), encoding='utf-8') as f:
        assert 'configs/mmcast/cast/metafile.yml' in \
            yaml.safe_load(f)['Import']


@pytest.mark.parametrize('short', sorted(NAMES))
def test_alias_loads_to_its_target_and_the_name_tells_the_config(short):
    """The alias is its target; the name's GPUs x batch, iterations and
    label percentage are the config's."""
    name = NAMES[short]
    alias = osp.join(CONFIG_DIR, f'{short}.py')
    target = osp.join(CAST_DIR, f'{name}.py')
    assert loads_alike(alias, target), short
    cfg = _dict(target)
    parts = CONVENTION.match(name).groupdict()
    iters = int(parts['iters']) * (1000 if parts['unit'] == 'k' else 1)
    assert cfg['train_cfg']['max_iters'] == iters, name
    loader = cfg['train_dataloader']
    assert loader['batch_size'] == int(parts['batch']), name
    if parts['dataset'] != 'toy':
        # the real-size schedules are for a total batch of 8
        assert int(parts['gpus']) * int(parts['batch']) == \
            cfg['auto_scale_lr']['base_batch_size'] == 8, name
    dataset = loader['dataset']
    labeled = dataset['datasets'][0] if 'datasets' in dataset else dataset
    # a seeded draw (1@10) or Guided Distillation's list (1@perc_10)
    assert re.search(rf'@(perc_)?{parts["percent"]}\.json$',
                     labeled['ann_file']), name
    # semi: D_u pseudo-labeled (1b, 2) or the stage's place in the
    # semi-supervised recipe (1a, 3); the baseline alone is labels-only
    assert bool(parts['semi']) == (parts['algorithm'] != 'supervised'), name


def test_default_work_dirs_chain_the_conventional_configs():
    """Run one after another, a stage reads the previous one's default
    work dir, named after the conventional config."""
    for short, name in NAMES.items():
        text = str(_dict(osp.join(CAST_DIR, f'{name}.py')))
        for other in NAMES:
            assert f'work_dirs/{other}/' not in text, (name, other)
        assert f'configs/mmcast/{short}.py' not in text


def test_aliases_train_where_the_next_stage_looks():
    """Run one after another by their short names (as before the
    conventional names), the stages hand over as the conventional ones do:
    each alias trains in its target's default work dir."""
    for short, name in NAMES.items():
        cfg = _dict(osp.join(CONFIG_DIR, f'{short}.py'))
        assert cfg['work_dir'] == f'./work_dirs/{name}', short
        assert 'work_dir' not in _dict(osp.join(CAST_DIR, f'{name}.py'))
    # e.g. stage 2 reads stage 1b's checkpoint from where the 1b alias
    # trained
    distill = _dict(osp.join(CONFIG_DIR, 'distill_cityscapes.py'))
    selftrain = _dict(osp.join(CONFIG_DIR,
                               'adapt_teacher_selftrain_cityscapes.py'))
    assert distill['adapted_teacher'] == \
        'work-dir://' + selftrain['work_dir'][2:]


def test_a_wrong_alias_is_detected(tmp_path):
    """An alias onto another config (here: the stage-3 config's short
    name pointing at stage 2) does not load alike."""
    distill = osp.join(CAST_DIR, f'{NAMES["distill_toy"]}.py')
    finetune = osp.join(CAST_DIR, f'{NAMES["finetune_toy"]}.py')
    wrong = tmp_path / 'finetune_toy.py'
    wrong.write_text(f"_base_ = '{distill}'\n")
    assert not loads_alike(str(wrong), finetune)
    assert loads_alike(str(wrong), distill)
