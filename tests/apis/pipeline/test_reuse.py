# Copyright (c) mmcast contributors. All rights reserved.
"""What a work dir already holds (``reuse``): the teacher it was made with,
the ``--reuse-from`` work dir, and when a finished stage may be linked.

A work dir of another teacher is refused, naming both; ``--reuse-from``
must be another pipeline work dir; a finished stage whose config is alike
is reusable only when every stage it is made from (``Stage.upstream``)
that the run plans is linked too — decided before anything is loaded.
Stages are built by hand, and the config comparison is a stand-in.
"""
import json
import os.path as osp

import pytest

from mmcast.apis.pipeline import PipelineError, RunSpec, Stage, parse_args
from mmcast.apis.pipeline.reuse import (StageReuse, check_reuse_base,
                                        check_work_dir_teacher)
from mmcast.apis.pipeline.settings import TEACHER_MARKER
from mmcast.utils.stage_state import write_completion


def spec_of(work_dir, *options) -> RunSpec:
    return RunSpec.from_args(parse_args(['toy', '--work-dir', str(work_dir),
                                         *options]))


def mark(work_dir, teacher: str) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / TEACHER_MARKER).write_text(json.dumps({'teacher': teacher}))


def test_a_work_dir_of_another_teacher_is_refused(tmp_path):
    mark(tmp_path, 'mask2former')
    with pytest.raises(PipelineError) as error:
        check_work_dir_teacher(spec_of(tmp_path, '--teacher', 'gdino-sam2'))
    assert '--teacher mask2former' in str(error.value)
    assert '--teacher gdino-sam2' in str(error.value)
    assert check_work_dir_teacher(spec_of(tmp_path)) is None  # the same


def test_a_work_dir_without_record_holds_the_default_teacher(tmp_path):
    check_work_dir_teacher(spec_of(tmp_path, '--teacher', 'sam3'))  # empty
    (tmp_path / 'seed0').mkdir()
    with pytest.raises(PipelineError, match='--teacher mask2former'):
        check_work_dir_teacher(spec_of(tmp_path, '--teacher', 'sam3'))
    check_work_dir_teacher(spec_of(tmp_path))


def test_reuse_from_must_be_another_pipeline_work_dir(tmp_path, capsys):
    work_dir = tmp_path / 'run'
    mark(work_dir, 'mask2former')
    with pytest.raises(PipelineError, match='itself'):
        check_reuse_base(spec_of(work_dir, '--reuse-from', str(work_dir)))
    other = tmp_path / 'other'
    other.mkdir()
    with pytest.raises(PipelineError) as error:
        check_reuse_base(spec_of(work_dir, '--reuse-from', str(other)))
    assert str(other) in str(error.value)
    assert TEACHER_MARKER in str(error.value)
    mark(other, 'mask2former')
    check_reuse_base(spec_of(work_dir, '--reuse-from', str(other)))
    mark(other, 'sam3')  # taken, with a note on what can be linked
    check_reuse_base(spec_of(work_dir, '--reuse-from', str(other)))
    assert '--teacher sam3' in capsys.readouterr().out


class SameConfig:
    """A stand-in for the loader's config comparison: alike, counted."""

    def __init__(self) -> None:
        self.calls = []

    def same_config(self, stage: Stage, source: str) -> bool:
        self.calls.append(source)
        return True


def finished(work_dir: str, max_iters: int) -> None:
    """A stage finished in ``work_dir`` (final checkpoint, MMEngine's
    ``last_checkpoint``, the completion record)."""
    final = osp.join(work_dir, f'iter_{max_iters}.pth')
    with open(final, 'wb'):
        pass
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
        f.write(final)
    write_completion(work_dir, final, max_iters)


def test_a_stage_is_reusable_only_with_its_planned_upstream_linked(
        tmp_path):
    spec = spec_of(tmp_path / 'run')
    base = tmp_path / 'base'
    source = base / 'seed0' / 'finetune'
    source.mkdir(parents=True)
    finished(str(source), 10)
    distill = osp.join(spec.work_dir, 'seed0', 'distill')
    stage = Stage('finetune', 'stage 3', 'configs/mmcast/finetune_toy.py',
                  osp.join(spec.work_dir, 'seed0', 'finetune'), max_iters=10,
                  seed=0, upstream=(distill, ))
    planned = {'seed0/distill', 'seed0/finetune'}
    loader = SameConfig()
    reuse = StageReuse(spec, loader)
    assert not reuse.reusable(stage, str(source), set(), planned)
    assert loader.calls == []  # refused before any config was compared
    assert reuse.reusable(stage, str(source), {'seed0/distill'}, planned)
    assert loader.calls == [str(source)]
    # an upstream stage the run does not plan does not hold it back
    assert reuse.reusable(stage, str(source), set(), {'seed0/finetune'})
    # nor does a stage not listed upstream
    assert reuse.reusable(stage, str(source), set(),
                          {'seed0/supervised_student', 'seed0/finetune'})
    # a source that did not finish this stage is no source
    assert not reuse.reusable(
        Stage('finetune', 'stage 3', stage.config, stage.work_dir,
              max_iters=20, seed=0, upstream=(distill, )),
        str(source), {'seed0/distill'}, planned)
