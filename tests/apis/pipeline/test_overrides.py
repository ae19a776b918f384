# Copyright (c) mmcast contributors. All rights reserved.
"""A stage's overrides as typed values (``Overrides``) and their one
rendering as ``--cfg-options`` strings (``launchers``).

``Overrides`` keep their order and let the last value of a key win;
merged into a real stage config they give the config MMDetection's scripts
build from the rendered strings (MMEngine's ``DictAction`` and
``Config.merge_from_dict``), for every kind of value the planner hands on;
each rendered value reads back as itself, and a value that would not is
refused, naming its key. The command line's strings are parsed once, into
typed values.
"""
import argparse
import copy

import pytest
from mmengine.config import DictAction

from conftest import REPO_ROOT
from mmcast.apis.pipeline import PipelineError
from mmcast.apis.pipeline.launchers import cfg_options_args, parse_cfg_options
from mmcast.apis.pipeline.overrides import Overrides
from mmcast.utils.config_files import load_config

STAGE_CONFIG = 'configs/mmcast/distill_toy.py'
CKPTS = ['/runs/cast/seed0/adapt_teacher/iter_300.pth',
         '/runs/cast/seed0/adapt_teacher_selftrain/iter_500.pth']
# (dotted key, value) of every kind the planner hands on, one key twice
TYPED = [
    ('train_cfg.max_iters', 5),
    ('optim_wrapper.optimizer.lr', 7.07107e-05),
    ('model.student.backbone.norm_eval', True),
    ('default_hooks.checkpoint.max_keep_ckpts', None),
    ('model.teacher_checkpoint', CKPTS),
    ('test_evaluator.0.proposal_nums', (1, 10, 100)),
    ('custom_hooks.0.out_file', '/runs/cast/seed0/pseudo_labels/stage2.json'),
    ('optim_wrapper.clip_grad._delete_', True),
    ('optim_wrapper.clip_grad.max_norm', 5.0),
    ('train_cfg.max_iters', 7),
]


@pytest.fixture(scope='module')
def stage_cfg():
    """The toy stage-2 config as the stages load it (default data root)."""
    return load_config(STAGE_CONFIG, {}, root=REPO_ROOT)


def mmengine_merge(cfg, args):
    """``cfg`` with ``--cfg-options ARGS`` merged as MMDetection's
    ``tools/train.py`` merges them."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = copy.deepcopy(cfg)
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', *args])
                        .cfg_options)
    return cfg


def test_order_last_value_and_sum():
    first = Overrides.of([('a.b', 1), ('c', 'x')])
    second = Overrides.of([('a.b', 2)])
    both = first + second
    assert both.items == (('a.b', 1), ('c', 'x'), ('a.b', 2))
    assert both.get('a.b') == 2 and first.get('a.b') == 1
    assert both.get('missing', 'default') == 'default'
    assert 'c' in both and 'a' not in both and 'missing' not in both
    assert both.as_dict() == {'a.b': 2, 'c': 'x'}
    assert len(both) == 3 and not Overrides() and both
    # summing makes a new value: the parts are unchanged
    assert first.items == (('a.b', 1), ('c', 'x'))


def test_as_dict_is_a_copy():
    value = ['x.pth']
    overrides = Overrides.of([('k', value)])
    overrides.as_dict()['k'].append('y.pth')
    assert overrides.get('k') == ['x.pth']


def test_merged_into_is_mmengines_cfg_options_merge(stage_cfg):
    overrides = Overrides.of(TYPED)
    before = stage_cfg.to_dict()
    merged = overrides.merged_into(stage_cfg)
    assert merged.to_dict() == mmengine_merge(
        stage_cfg, cfg_options_args(overrides)).to_dict()
    assert stage_cfg.to_dict() == before  # the original is not changed
    # and the values arrived as they are (the last of a key)
    assert merged.train_cfg.max_iters == 7
    assert merged.optim_wrapper.optimizer.lr == 7.07107e-05
    assert merged.model.student.backbone.norm_eval is True
    assert merged.default_hooks.checkpoint.max_keep_ckpts is None
    assert merged.model.teacher_checkpoint == CKPTS
    assert merged.test_evaluator[0].proposal_nums == (1, 10, 100)
    assert merged.custom_hooks[0].out_file == TYPED[6][1]
    assert merged.custom_hooks[0].type == 'PseudoLabelHook'  # item kept
    assert merged.optim_wrapper.clip_grad.to_dict() == {'max_norm': 5.0}


@pytest.mark.parametrize('key,value', TYPED, ids=[k for k, _ in TYPED])
def test_each_rendered_value_reads_back_as_itself(key, value):
    (arg, ) = cfg_options_args(Overrides.of([(key, value)]))
    rendered_key, sep, text = arg.partition('=')
    assert (rendered_key, sep) == (key, '=')
    parsed = DictAction._parse_iterable(text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize('value', [
    '/runs/my cast/seed0/pseudo_labels/stage2.json',  # a work dir with a space
    '123', 'None', 'True', 'a,b', '[x]'
])
def test_a_value_cfg_options_cannot_carry_is_refused_by_key(value):
    key = 'custom_hooks.0.out_file'
    with pytest.raises(PipelineError) as error:
        cfg_options_args(Overrides.of([('train_cfg.max_iters', 7),
                                       (key, value)]))
    assert f'{key}={value!r}' in str(error.value)


def test_command_line_strings_become_typed_values():
    overrides = parse_cfg_options([
        'train_cfg.max_iters=9', 'optim_wrapper.optimizer.lr=7.07107e-05',
        'model.flag=True', 'load_from=None',
        'model.teacher_checkpoint=[a.pth,b.pth]', 'x.nums=(1,10,100)',
        'work_dir=/runs/cast', 'train_cfg.max_iters=10'
    ], '--cfg-options')
    assert overrides.items == (
        ('train_cfg.max_iters', 9),
        ('optim_wrapper.optimizer.lr', 7.07107e-05), ('model.flag', True),
        ('load_from', None),
        ('model.teacher_checkpoint', ['a.pth', 'b.pth']),
        ('x.nums', (1, 10, 100)), ('work_dir', '/runs/cast'),
        ('train_cfg.max_iters', 10))
    assert type(overrides.get('train_cfg.max_iters')) is int
    # and they render back to the same strings' values
    assert parse_cfg_options(cfg_options_args(overrides),
                             '--cfg-options') == overrides


@pytest.mark.parametrize('item', ['train_cfg.max_iters', '=7'])
def test_an_item_without_key_and_value_is_refused(item):
    with pytest.raises(PipelineError, match='--stage-cfg-options') as error:
        parse_cfg_options(['a=1', item], '--stage-cfg-options')
    assert repr(item) in str(error.value)


def test_unbalanced_brackets_are_refused_with_their_option():
    with pytest.raises(PipelineError, match="--cfg-options 'k=a\\(b,c'"):
        parse_cfg_options(['k=a(b,c'], '--cfg-options')
    with pytest.raises(PipelineError, match='model.x: unbalanced'):
        cfg_options_args(Overrides.of([('model.x', 'a(b,c')]))
