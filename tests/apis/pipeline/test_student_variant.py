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


def _plan(tmp_path, *options):
    spec = RunSpec.from_args(parse_args(
        ['toy', '--work-dir', str(tmp_path / 'run'), *options]))
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


@pytest.mark.parametrize('options,message', [
    (['--methods', 'cast', 'gd'],
     'no config for stage guided_distillation of toy with --student'),
    (['--student-init', 'source-pretrained'],
     'loads the recipe\'s R-18 backbone'),
])
def test_a_student_without_a_stage_or_with_the_r18_backbone_is_refused(
        tmp_path, options, message):
    with pytest.raises(PipelineError, match=message):
        _plan(tmp_path, '--student', EOMT, *options)
    assert not osp.exists(tmp_path / 'run')
    with pytest.raises(PipelineError, match='with --student dinov3-s'):
        _plan(tmp_path, '--student', 'dinov3-s')
