# Copyright (c) mmcast contributors. All rights reserved.
"""The ablation tables as runs (``--ablation TABLE:ROW``): every row's
options reach the stages they name, and the toy's L_pxl draws from at least
4 × R candidates per anchor at its stride 16 (counted from the configs'
images, batches and the backbone's own feature maps). The tiny runs of the rows are
in ``tests/test_cast_pipeline.py``."""
import pytest
import torch
from mmengine.config import Config

from mmcast.apis.pipeline import PipelineError, RunSpec, parse_args
from mmcast.apis.pipeline.ablations import ablation_rows, find_ablation
from mmcast.apis.pipeline.settings import REPO_ROOT
from mmcast.apis.pipeline.stage_graph import stage_keys
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

ROWS = ablation_rows()
# (stage config of the toy, the key of the model L_pxl trains)
CONTRAST_STAGES = [('adapt_teacher', 'model'),
                   ('adapt_teacher_selftrain', 'model.student'),
                   ('distill', 'model.student')]


def _spec(*options: str) -> RunSpec:
    return RunSpec.from_args(parse_args(['toy', '--work-dir', 'w',
                                         *options]))


def test_every_row_names_known_stages_and_real_results_rows():
    from mmcast.evaluation.results_table import ROWS as RESULT_ROWS
    tables = {row.table for row in ROWS.values()}
    assert {'loss', 'stages', 'sampler'} <= tables
    for key, row in ROWS.items():
        assert set(row.stage_options) <= set(stage_keys()), key
        assert {k for _, k in row.columns} <= {k for k, _ in RESULT_ROWS}
        assert f'{row.table}:{row.reference}' in ROWS, key
    # the paper's three tables have its numbers on every row
    for key, row in ROWS.items():
        if row.table in ('loss', 'stages', 'sampler'):
            assert set(row.paper) == {c for c, _ in row.columns}, key


@pytest.mark.parametrize('key', sorted(ROWS))
def test_a_row_becomes_the_runs_stage_options(key):
    """The row's overrides come first, the command line's after them (they
    win), and its stage-2 teacher is the run's."""
    row = ROWS[key]
    spec = _spec('--ablation', key, '--stage-cfg-options',
                 'distill:model.semi_train_cfg.sup_weight=0.5')
    assert spec.ablation == row
    for stage, overrides in row.stage_options.items():
        got = spec.stage_options[stage]
        assert list(got)[:len(overrides)] == list(overrides)
    assert spec.stage_options['distill'].get(
        'model.semi_train_cfg.sup_weight') == 0.5
    assert spec.distill_teacher == (row.distill_teacher or 'selftrained')
    assert spec.ablation.record()['label'] == row.label


def test_contradicting_or_unknown_rows_are_refused():
    with pytest.raises(PipelineError, match='contradicts --ablation'):
        _spec('--ablation', 'stages:no_adaptation', '--distill-teacher',
              'adapted')
    assert _spec('--ablation', 'stages:no_adaptation', '--distill-teacher',
                 'pretrained').distill_teacher == 'pretrained'
    with pytest.raises(PipelineError, match='sampler:uniform'):
        find_ablation('sampler:uniformly')
    with pytest.raises(PipelineError, match='add --methods cast'):
        _spec('--ablation', 'sampler:uniform', '--methods', 'gd')


def _candidates_per_anchor(stage: str, model_key: str,
                           overrides: dict) -> tuple:
    """(candidates per anchor, R) of the toy stage's L_pxl: the other
    images of a training batch times the pixels of the feature map its
    ``contrast_level`` picks, that map measured on an image of the config's
    size through the config's backbone; the projection head's input width
    is checked against that map's channels."""
    register_all_modules()
    cfg = Config.fromfile(f'{REPO_ROOT}/configs/mmcast/{stage}_toy.py')
    cfg.merge_from_dict(overrides)
    model = cfg
    for part in model_key.split('.'):
        model = model[part]
    head = model.panoptic_head
    loss = head.loss_pixel_contrast
    assert loss.cross_image, 'candidates counted from the other images'
    backbone = MODELS.build(model.backbone)
    backbone.eval()  # mmdet's ResNet.train returns None
    width, height = cfg.image_scale
    with torch.no_grad():
        feats = backbone(torch.zeros(1, 3, height, width))
    channels, h, w = feats[head.contrast_level].shape[-3:]
    assert head.projection_head.in_channels == channels, (stage, overrides)
    batch = cfg.train_dataloader.batch_size
    return (batch - 1) * h * w, loss.num_negatives


@pytest.mark.parametrize('stage,model_key', CONTRAST_STAGES)
def test_the_toy_contrast_level_gives_every_anchor_four_times_r(stage,
                                                                model_key):
    """The toy's own level (stride 16) and the stride-8 row: at least 4 × R
    candidates per anchor, so that the samplers choose; the stride-32 row
    (the deepest level) has fewer."""
    candidates, r = _candidates_per_anchor(stage, model_key, {})
    assert candidates >= 4 * r, (stage, candidates, r)
    for name, enough in (('contrast:stride8', True),
                         ('contrast:stride32', False)):
        overrides = dict(find_ablation(name).stage_options[stage])
        candidates, r = _candidates_per_anchor(stage, model_key, overrides)
        assert (candidates >= 4 * r) == enough, (name, stage, candidates, r)
