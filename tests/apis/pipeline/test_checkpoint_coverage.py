# Copyright (c) mmcast contributors. All rights reserved.
"""A checkpoint given by the user against the model it initialises.

The toy R-18 student (``mask2former_r18_toy.py``, here at the teacher's
widths) and R-34 teacher (``cast_mask2former_r34_toy_teacher.py``) are
built for their shapes only (``meta`` device). An R-18 checkpoint covers
about half of the R-34 and
lacks its deeper blocks (``backbone.layer1.2``, ...): it is partial; the
R-34's own weights are not, nor is a backbone-only checkpoint judged, as
its ``init_cfg`` loads it (``prefix='backbone.'``), against the backbone.
Through the pipeline, ``custom-cpu --pretrained-teacher <R-18> --dry-run``
is refused by the preflight naming the file and the blocks, and passes with
``--allow-partial-init``.
"""
import glob
import os.path as osp
from typing import Optional

import pytest
import torch

from conftest import REPO_ROOT
from mmcast.apis.pipeline import PreflightFailed, run_pipeline
from mmcast.utils.checkpoint_coverage import (InitTarget, checkpoint_coverage,
                                              init_target)
from test_custom_dataset import CLASSES, make_coco_dataset

MODELS = osp.join(REPO_ROOT, 'configs', 'mmcast', '_base_', 'models')


def shapes_of(config: str, options: Optional[dict] = None) -> dict:
    """The state dict (``meta`` tensors) of a model config's model, with
    ``options`` merged into the config."""
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    import mmcast  # noqa: F401  (registers mmcast modules)
    from mmcast.apis.pipeline.config_inputs import build_shape_model
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(osp.join(MODELS, config))
    cfg.merge_from_dict(options or {})
    return build_shape_model(cfg.model).state_dict()


@pytest.fixture(scope='module')
def models() -> dict:
    # the R-18 at the R-34's widths: a shallower model of its family
    r18 = shapes_of('mask2former_r18_toy.py', {
        'model.backbone.base_channels': 24,
        'model.panoptic_head.in_channels': [24, 48, 96, 192]})
    return dict(r18=r18,
                r34=shapes_of('cast_mask2former_r34_toy_teacher.py'))


def coverage(models, checkpoint, target=InitTarget()):
    return checkpoint_coverage(models['r34'], target.weights(checkpoint),
                               target.module, 'CASTMask2Former')


def test_a_student_checkpoint_for_the_teacher_is_partial(models):
    cover = coverage(models, dict(state_dict=models['r18']))
    assert 0.4 < cover.provided / cover.total < 0.6
    assert cover.tensors_provided < cover.tensors
    assert 'backbone.layer1.2' in cover.missing
    assert 'backbone.layer1.1' not in cover.missing
    assert cover.partial == ['backbone']
    assert 0.4 < cover.random_share['backbone'] < 0.5
    assert 'panoptic_head.pixel_decoder' not in cover.random_share
    # 20 queries for 30: re-initialised, not missing
    assert 'panoptic_head.query_embed' in cover.reshaped
    lines = cover.findings('r18.pth', 'stage 1a, load_from')
    assert len(lines.notes) == len(lines.problems) == 1
    problem = lines.problems[0]
    assert problem.startswith('r18.pth (stage 1a, load_from)')
    assert 'of backbone random' in problem and 'backbone.layer1.2' in problem
    assert 'pass --allow-partial-init' in problem
    assert 'missing: backbone.layer1.2' in lines.notes[0]
    assert 'and 4 more' in lines.notes[0]  # 10 modules, 6 named
    allowed = cover.findings('r18.pth', 'stage 1a', allow_partial=True)
    assert allowed.problems == []
    assert allowed.notes[0].endswith('(partial: --allow-partial-init)')


def test_the_teachers_own_weights_cover_it(models):
    # under "student." as a distiller's (read as a frozen teacher's)
    distiller = {f'student.{k}': v for k, v in models['r34'].items()}
    teacher = init_target({}, 'model.teacher_checkpoint')
    for checkpoint, target in ((models['r34'], InitTarget()),
                               (distiller, teacher)):
        cover = coverage(models, checkpoint, target)
        assert cover.provided == cover.total > 3 * 10**6
        assert not cover.missing and not cover.partial
        lines = cover.findings('r34.pth', 'stage 1a')
        assert lines.problems == []
        assert lines.notes == ['r34.pth: provides all 3.5 M weights of '
                               'CASTMask2Former (stage 1a)']


def test_a_backbone_checkpoint_is_judged_against_the_backbone(models):
    model_cfg = dict(backbone=dict(init_cfg=dict(
        type='Pretrained', checkpoint='r34.pth', prefix='backbone.')))
    target = init_target(model_cfg, 'model.backbone.init_cfg.checkpoint')
    assert (target.module, target.prefix) == ('backbone', 'backbone.')
    assert not target.whole
    backbone = {k: v for k, v in models['r34'].items()
                if k.startswith('backbone.')}
    # a whole detector's checkpoint: only its backbone is read
    for checkpoint in (backbone, models['r34']):
        cover = coverage(models, checkpoint, target)
        assert cover.provided == cover.total and not cover.partial
        assert "weights of CASTMask2Former's backbone" in cover.findings(
            'r34.pth', 'stage 2').notes[0]
    # the same file loaded into the whole model leaves its head random
    cover = coverage(models, backbone)
    assert cover.missing == ['panoptic_head']
    assert 'panoptic_head.pixel_decoder' in cover.partial
    # an R-18's backbone for the R-34's is partial there too
    r18 = {k: v for k, v in models['r18'].items() if 'backbone.' in k}
    assert coverage(models, r18, target).partial == ['backbone']


# ------------------------------------------------------- through the pipeline
def test_the_pipeline_refuses_a_student_checkpoint_as_teacher(
        models, tmp_path, capsys):
    data_root, work_dir = str(tmp_path / 'fruit'), str(tmp_path / 'work')
    make_coco_dataset(data_root, num_train=6, num_val=2)
    r18 = str(tmp_path / 'r18_student.pth')
    # one stored value per tensor: only the shapes are compared
    torch.save(dict(state_dict={k: torch.zeros(()).expand(v.shape)
                                for k, v in models['r18'].items()}), r18)
    options = ['--data-root', data_root, '--classes', *CLASSES,
               '--pretrained-teacher', r18, '--dry-run']
    with pytest.raises(PreflightFailed) as refused:
        run_pipeline('custom-cpu', work_dir, *options)
    problems = [line for line in refused.value.problems if r18 in line]
    assert len(problems) == 1, refused.value.problems
    assert 'backbone.layer1.2' in problems[0]
    assert '--allow-partial-init' in problems[0]
    assert not glob.glob(osp.join(work_dir, '**', '*.pth'), recursive=True)
    capsys.readouterr()
    assert run_pipeline('custom-cpu', work_dir, *options,
                        '--allow-partial-init') == {}
    out = capsys.readouterr().out
    assert 'preflight: ok' in out
    assert f'note: {r18}: provides ' in out
    assert '(partial: --allow-partial-init)' in out
