# Copyright (c) mmcast contributors. All rights reserved.
"""``--student VARIANT``: the student's stages (2, 3, the labels-only
baseline, Guided Distillation) run the table's configs of that variant, the
teacher's stages the recipe's; a run whose variant lacks a stage's config,
or that asks for the recipe's R-18 backbone, is refused before anything is
written. Nothing is trained (the tiny run is in tests/test_cast_pipeline.py).
"""
import os.path as osp

import pytest

from mmcast.apis.pipeline import (ConfigLoader, PipelineError, Planner,
                                  RunSpec, parse_args)
from mmcast.apis.pipeline.settings import STUDENT_STAGES
from mmcast.apis.pipeline.stage_table import (find_row, stage_rows,
                                              student_variants)

EOMT = 'eomt-dinov3-tiny'


def _plan(tmp_path, *options, dataset='toy'):
    spec = RunSpec.from_args(parse_args(
        [dataset, '--work-dir', str(tmp_path / 'run'), *options]))
    return spec, Planner(spec, ConfigLoader(spec)).plan()


def test_the_students_stages_take_the_variants_configs(tmp_path):
    _, recipe = _plan(tmp_path)
    spec, plan = _plan(tmp_path, '--student', EOMT)
    assert spec.student == EOMT
    configs = {(s.key, s.seed): s.config for s in plan.stages}
    for stage in recipe.stages:
        got = configs[(stage.key, stage.seed)]
        if stage.key in STUDENT_STAGES:
            row = find_row('toy', stage.key,
                           'mask2former' if stage.key == 'distill' else None,
                           EOMT)
            assert got == f'configs/mmcast/{row["config"]}.py', stage.key
            assert 'eomt' in got
        else:
            assert got == stage.config, stage.key
    # stage 3 starts from this run's stage 2, whichever student it is
    by_key = {s.key: s for s in plan.stages}
    assert by_key['finetune'].overrides.get(
        'model.init_cfg.checkpoint') == by_key['distill'].final


def test_every_variant_is_a_choice_and_has_its_rows():
    variants = student_variants()
    assert EOMT in variants and None not in variants
    for variant in variants:
        assert any(row['variant'] == variant for row in stage_rows())


@pytest.mark.parametrize('dataset,variant,options,message', [
    ('cityscapes', 'dinov3-s', ['--methods', 'cast', 'gd'],
     'no config for stage guided_distillation of cityscapes with --student '
     'dinov3-s'),
    ('toy', EOMT, ['--student-init', 'source-pretrained'],
     'loads the recipe\'s R-18 backbone'),
])
def test_a_student_without_a_stage_or_with_the_r18_backbone_is_refused(
        tmp_path, dataset, variant, options, message):
    with pytest.raises(PipelineError, match=message):
        _plan(tmp_path, '--student', variant, *options, dataset=dataset)
    assert not osp.exists(tmp_path / 'run')
    with pytest.raises(PipelineError, match='with --student dinov3-s'):
        _plan(tmp_path, '--student', 'dinov3-s')


@pytest.mark.parametrize('iters', [[], ['--iters', 'distill=300',
                                        'finetune=2'],
                                   ['--iters', 'distill=6400']])
def test_the_masked_attention_is_annealed_inside_every_stage_length(
        tmp_path, iters):
    """Shortened or lengthened by ``--iters``, each EoMT stage ends with
    every window of its MaskAnnealingHook closed (the predict never masks
    its attention), in the order and the proportions of its config's."""
    spec, plan = _plan(tmp_path, '--student', EOMT, '--seeds', '0', *iters)
    loader = ConfigLoader(spec)
    annealed = 0
    for stage in plan.stages:
        cfg = loader.load(stage)
        hooks = [h for h in cfg.get('custom_hooks', [])
                 if h['type'] == 'MaskAnnealingHook']
        if not hooks:
            continue
        annealed += 1
        own = [h for h in loader.read(stage.config).custom_hooks
               if h['type'] == 'MaskAnnealingHook'][0]
        own_iters = loader.config_iters(stage.config)
        starts, ends = hooks[0]['start_iters'], hooks[0]['end_iters']
        assert cfg.train_cfg.max_iters == stage.max_iters
        assert max(ends) <= stage.max_iters, (stage.key, ends)
        assert all(s < e for s, e in zip(starts, ends))
        assert list(starts) == sorted(starts)
        if stage.max_iters == own_iters:
            assert (starts, ends) == (own['start_iters'], own['end_iters'])
        else:
            # the last window closes where the config's does, in proportion
            expected = own['end_iters'][-1] * stage.max_iters / own_iters
            assert abs(ends[-1] - expected) <= 1, (stage.key, ends)
    assert annealed == 3  # stage 2, stage 3 and the labels-only student
